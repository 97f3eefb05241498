"""Rule conditions end to end (SPEC §2 `when`): the network a request comes
from, the kind and age of its SVID, its JWT claims, and a posture verdict
an earlier Envoy filter put in dynamic metadata. Each refusal is 403
`condition_not_met` naming the condition, with an audit record listing
what was evaluated, and nothing reaches the provider."""

import time

import pytest
import requests

import svid
from conftest import running_gateway
from test_identity import FIXTURES, X509_POLICY, with_mtls

BOT = "spiffe://example.org/ns/support/sa/bot"
RESEARCH = "spiffe://example.org/ns/research/sa/agent"
HI = [{"role": "user", "content": "hi"}]
POSTURE = "posture.example.com"

RULES = [
    # Only from the loopback network (where the tests run), and only from 10/8.
    {"id": "local-only", "effect": "allow", "workloads": [BOT], "providers": ["openai"], "models": ["gpt-4o-mini"],
     "when": {"source_cidrs": ["127.0.0.0/8", "::1/128"]}},
    {"id": "office-only", "effect": "allow", "workloads": [BOT], "providers": ["openai"], "models": ["gpt-4.1-mini"],
     "when": {"source_cidrs": ["10.0.0.0/8"]}},
    # Fresh SVIDs only; production environment claims only.
    {"id": "fresh", "effect": "allow", "workloads": [BOT], "providers": ["anthropic"], "models": ["claude-haiku-4-5"],
     "when": {"svid": {"max_age_seconds": 600}}},
    {"id": "prod-env", "effect": "allow", "workloads": [RESEARCH], "providers": ["openai"], "models": ["gpt-4o"],
     "when": {"claims": {"env": ["prod"]}}},
    # A posture verdict from the trusted hop, through header_to_metadata.
    {"id": "compliant-devices", "effect": "allow", "workloads": [BOT], "providers": ["gemini"],
     "models": ["gemini-2.5-flash"], "when": {"metadata": [{"namespace": POSTURE, "key": "compliant", "equals": "true"}]}},
    # A deny that applies only from the loopback network.
    {"id": "no-o1-from-here", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"],
     "models": ["o1"], "when": {"source_cidrs": ["127.0.0.0/8"]}},
    {"id": "no-o3-from-office", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"],
     "models": ["o3"], "when": {"source_cidrs": ["10.0.0.0/8"]}},
    {"id": "research", "effect": "allow", "workloads": [RESEARCH], "providers": ["openai"], "models": ["o1", "o3"]},
]


def posture_from_the_trusted_hop(config, _ports):
    """Envoy's header_to_metadata filter, before modelgate, turns the
    posture header a trusted hop sets into dynamic metadata."""
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"].insert(0, {
        "name": "envoy.filters.http.header_to_metadata",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config",
            "request_rules": [{"header": "x-posture-compliant", "remove": True,
                               "on_header_present": {"metadata_namespace": POSTURE, "key": "compliant", "type": "STRING"}}]}})


@pytest.fixture(scope="module")
def gw():
    with running_gateway({"rules": RULES}, mutate=posture_from_the_trusted_hop) as gw:
        yield gw


def call(gw, path, body, token, headers=None):
    return requests.post(f"{gw.url}{path}", json=body, timeout=10,
                         headers={"authorization": f"Bearer {token}", **(headers or {})})


def chat(gw, model, who=BOT, token=None):
    return call(gw, "/openai/v1/chat/completions", {"model": model, "messages": HI}, token or svid.mint(who))


def refused(gw, r, condition, rule):
    assert (r.status_code, r.headers.get("x-modelgate-reason")) == (403, "condition_not_met"), r.text
    record = gw.audit_for(r.headers["x-request-id"])
    assert (record["reason"], record["detail"], record["rule"]) == ("condition_not_met", condition, rule)
    assert {"rule": rule, "condition": condition, "ok": False} in record["conditions"]
    return record


def test_the_source_network_decides(gw):
    gw.reset()
    ok = chat(gw, "gpt-4o-mini")
    assert ok.status_code == 200
    record = gw.audit_for(ok.headers["x-request-id"])
    assert record["conditions"] == [{"rule": "local-only", "condition": "source_cidrs", "ok": True}]
    refused(gw, chat(gw, "gpt-4.1-mini"), "source_cidrs", "office-only")
    assert len(gw.requests_seen()) == 1


def test_x_forwarded_for_is_never_the_source(gw):
    r = call(gw, "/openai/v1/chat/completions", {"model": "gpt-4.1-mini", "messages": HI}, svid.mint(BOT),
             {"x-forwarded-for": "10.1.2.3"})
    refused(gw, r, "source_cidrs", "office-only")


def test_an_old_jwt_svid_fails_max_age(gw):
    gw.reset()
    body = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI}
    fresh = call(gw, "/anthropic/v1/messages", body, svid.mint(BOT))
    assert fresh.status_code == 200
    old = call(gw, "/anthropic/v1/messages", body, svid.mint(BOT, iat=int(time.time()) - 601))
    refused(gw, old, "svid.max_age_seconds", "fresh")
    assert len(gw.requests_seen()) == 1


def test_claims_must_name_the_environment(gw):
    gw.reset()
    assert chat(gw, "gpt-4o", token=svid.mint(RESEARCH, claims_extra={"env": "prod"})).status_code == 200
    assert chat(gw, "gpt-4o", token=svid.mint(RESEARCH, claims_extra={"env": ["staging", "prod"]})).status_code == 200
    refused(gw, chat(gw, "gpt-4o", token=svid.mint(RESEARCH, claims_extra={"env": "dev"})), "claims.env", "prod-env")
    refused(gw, chat(gw, "gpt-4o", who=RESEARCH), "claims.env", "prod-env")
    assert len(gw.requests_seen()) == 2


def test_a_posture_verdict_in_metadata_allows_and_its_absence_refuses(gw):
    gw.reset()
    path = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    ok = call(gw, path, body, svid.mint(BOT), {"x-posture-compliant": "true"})
    assert ok.status_code == 200, ok.text
    condition = f"metadata.{POSTURE}.compliant"
    refused(gw, call(gw, path, body, svid.mint(BOT)), condition, "compliant-devices")
    refused(gw, call(gw, path, body, svid.mint(BOT), {"x-posture-compliant": "false"}), condition, "compliant-devices")
    [seen] = gw.requests_seen()
    assert all(k != "x-posture-compliant" for k, _ in seen["headers"]), "the verdict header stays in the gateway"


def test_a_deny_rule_applies_only_while_its_condition_holds(gw):
    gw.reset()
    denied = chat(gw, "o1", who=RESEARCH)
    assert (denied.status_code, denied.headers["x-modelgate-reason"]) == (403, "model_not_allowed")
    record = gw.audit_for(denied.headers["x-request-id"])
    assert record["rule"] == "no-o1-from-here"
    assert chat(gw, "o3", who=RESEARCH).status_code == 200, "the office-only deny does not hold here"


@pytest.fixture(scope="module")
def mtls_gw():
    rules = [{"id": "prod-env", "effect": "allow", "workloads": [BOT], "providers": ["openai"],
              "models": ["gpt-4o-mini"], "when": {"claims": {"env": ["prod"]}}},
             {"id": "certs-only", "effect": "allow", "workloads": [BOT], "providers": ["openai"],
              "models": ["gpt-4.1-mini"], "when": {"svid": {"types": ["x509"]}}}]
    with running_gateway({**X509_POLICY, "rules": rules}, mutate=with_mtls) as gw:
        gw.url = gw.url.replace("http://127.0.0.1", "https://localhost")
        yield gw


def mtls_call(gw, model, token=None):
    return requests.post(f"{gw.url}/openai/v1/chat/completions", json={"model": model, "messages": HI}, timeout=10,
                         headers={"authorization": f"Bearer {token}"} if token else {},
                         verify=str(FIXTURES / "ca.pem"), cert=(str(FIXTURES / "bot.pem"), str(FIXTURES / "bot.key")))


def test_an_x509_only_request_cannot_satisfy_claims(mtls_gw):
    mtls_gw.reset()
    refused(mtls_gw, mtls_call(mtls_gw, "gpt-4o-mini"), "claims.env", "prod-env")
    both = mtls_call(mtls_gw, "gpt-4o-mini", token=svid.mint(BOT, claims_extra={"env": "prod"}))
    assert both.status_code == 200
    assert mtls_call(mtls_gw, "gpt-4.1-mini").status_code == 200, "svid.types x509 holds for a certificate"
    assert len(mtls_gw.requests_seen()) == 2
