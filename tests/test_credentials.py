"""Secretless credentials end to end, through the real Envoy with the
official SDKs: per-request minted JWTs, and access tokens exchanged for the
workload's identity — OpenAI's workload identity federation (RFC 8693,
JSON, the caller's JWT-SVID), Anthropic's (RFC 7523 jwt-bearer, JSON, a
gateway-minted assertion) and the generic form-encoded RFC 8693 — at a
token server that verifies what it is given. The upstream sees the
workload's own credential, never its SVID; one exchange serves concurrent
requests; every failure is a 503 with its reason, audited, and nothing
reaches the provider."""

import concurrent.futures
import json
import subprocess
import time

import anthropic
import openai
import pytest
import requests
from jwcrypto import jwk

import svid
from conftest import running_gateway
from harness import ROOT
from token_server import TokenServer, verify_es256

HI = [{"role": "user", "content": "hi"}]
BOT = "spiffe://example.org/ns/support/sa/bot"
SIGNING_KEY = jwk.JWK.generate(kty="EC", crv="P-256")
ISSUER = "https://modelgate.test"


def printed_jwks() -> dict:
    """The JWKS as `modelgate jwks` prints it: what a provider is given."""
    pem = SIGNING_KEY.export_to_pem(private_key=True, password=None).decode()
    out = subprocess.run(["cargo", "run", "-q", "-p", "modelgate-cli", "--bin", "modelgate", "--", "jwks",
                          "--key-env", "MODELGATE_SIGNING_KEY"], cwd=ROOT, capture_output=True, text=True,
                         env={**__import__("os").environ, "MODELGATE_SIGNING_KEY": pem}, check=True)
    return json.loads(out.stdout)


def keys_of(jwks: dict) -> dict:
    return {k["kid"]: jwk.JWK(**k) for k in jwks["keys"]}


def te(path, **extra):
    return {"type": "token_exchange", "cluster": "token_server", "path": path, "timeout_ms": 1000, **extra}


MINT = {"env": "MODELGATE_SIGNING_KEY", "issuer": ISSUER}
PROVIDERS = [
    {"name": "openai", "api": "openai", "match": {"path_prefix": "/openai/"},
     "credential": te("/oauth/token", profile="openai", subject="svid", refresh_margin_seconds=1,
                      params={"identity_provider_id": "idp_modelgate"},
                      accounts=[{"workloads": ["spiffe://example.org/ns/support/**"],
                                 "params": {"service_account_id": "sa_support"}},
                                {"workloads": ["spiffe://example.org/ns/research/**"],
                                 "params": {"service_account_id": "sa_research"}}])},
    {"name": "anthropic", "api": "anthropic", "match": {"path_prefix": "/anthropic/"},
     "credential": te("/v1/oauth/token", profile="anthropic", subject="minted",
                      mint={**MINT, "audience": "https://api.anthropic.com"},
                      params={"federation_rule_id": "fdrl_1", "organization_id": "org_1",
                              "service_account_id": "svac_1"})},
    {"name": "private", "api": "openai_compatible", "match": {"path_prefix": "/private/"},
     "credential": {"type": "minted_jwt", **MINT, "audience": "https://vllm.internal", "ttl_seconds": 60}},
    {"name": "sts", "api": "openai_compatible", "match": {"path_prefix": "/sts/"},
     "credential": te("/sts/token", authority="sts.internal", grant="token_exchange", subject="minted",
                      mint={**MINT, "audience": "https://sts.internal"}, audience="https://llm.internal",
                      scope="llm.invoke")},
    {"name": "flaky", "api": "openai_compatible", "match": {"path_prefix": "/flaky/"},
     "credential": te("/flaky/token", authority="sts.internal", grant="jwt_bearer", subject="minted",
                      mint={**MINT, "audience": "https://sts.internal"})},
    {"name": "down", "api": "openai_compatible", "match": {"path_prefix": "/down/"},
     "credential": {**te("/token", authority="sts.internal", grant="jwt_bearer", subject="minted",
                         mint={**MINT, "audience": "https://sts.internal"}), "cluster": "token_down"}},
]
RULES = [
    {"id": "support-bot", "effect": "allow", "workloads": [BOT], "providers": ["*"],
     "models": ["gpt-4o-mini", "claude-haiku-4-5", "llama-3"]},
    {"id": "research", "effect": "allow", "workloads": ["spiffe://example.org/ns/research/**"],
     "providers": ["*"], "models": ["*"]},
    {"id": "ops", "effect": "allow", "workloads": ["spiffe://example.org/ns/ops/**"], "providers": ["*"],
     "models": ["*"]},
]


@pytest.fixture(scope="module")
def tokens():
    server = TokenServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tokens):
    jwks = printed_jwks()
    bundle = keys_of({"keys": [{**svid.load_key().export_public(as_dict=True)}]})
    tokens.route("/oauth/token", grant="token_exchange", encoding="json", keys=bundle, audience=svid.AUDIENCE,
                 required={"identity_provider_id": "idp_modelgate", "service_account_id": None})
    tokens.route("/v1/oauth/token", grant="jwt_bearer", encoding="json", keys=keys_of(jwks), issuer=ISSUER,
                 audience="https://api.anthropic.com",
                 headers={"anthropic-beta": "oidc-federation-2026-04-01"},
                 required={"federation_rule_id": "fdrl_1", "organization_id": "org_1", "service_account_id": "svac_1"})
    tokens.route("/sts/token", grant="token_exchange", encoding="form", keys=keys_of(jwks), issuer=ISSUER,
                 audience="https://sts.internal", required={"audience": "https://llm.internal", "scope": "llm.invoke"})
    tokens.route("/flaky/token", grant="jwt_bearer", encoding="form", keys=keys_of(jwks), issuer=ISSUER,
                 audience="https://sts.internal")

    def mutate(config, _ports):
        clusters = config["static_resources"]["clusters"]
        for name, port in (("token_server", tokens.port), ("token_down", __import__("harness").free_port())):
            clusters.append({"name": name, "type": "STATIC", "connect_timeout": "0.5s", "load_assignment": {
                "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": port}}}}]}]}})
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        for prefix in ("/sts/", "/flaky/", "/down/"):
            routes.insert(0, {"match": {"prefix": prefix},
                              "route": {"cluster": "llm_upstream", "prefix_rewrite": "/", "timeout": "120s"}})

    pem = SIGNING_KEY.export_to_pem(private_key=True, password=None).decode()
    with running_gateway({"providers": PROVIDERS, "rules": RULES}, mutate=mutate,
                         env={"MODELGATE_SIGNING_KEY": pem}) as g:
        g.extra["jwks"] = jwks
        yield g


def authorization(seen: dict) -> str:
    [value] = [v for k, v in seen["headers"] if k == "authorization"]
    assert value.startswith("Bearer ")
    return value[len("Bearer "):]


def chat(gw, prefix: str, sub: str, model="gpt-4o-mini"):
    return requests.post(f"{gw.url}/{prefix}/v1/chat/completions", json={"model": model, "messages": HI},
                         headers={"authorization": f"Bearer {svid.mint(sub)}"}, timeout=15)


def test_openai_federation_exchanges_the_callers_svid_for_its_own_account(gw, tokens):
    gw.reset()
    caller = svid.mint(BOT)
    client = openai.OpenAI(base_url=gw.openai_base, api_key=caller, max_retries=0)
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    [seen] = gw.requests_seen()
    token = authorization(seen)
    assert caller not in json.dumps(seen), "the caller's SVID never reaches the provider"
    claims = tokens.verify_issued(token)
    assert (claims["sub"], claims["account"]) == (BOT, "sa_support")
    record = gw.audit_for(reply.headers["x-request-id"])
    assert record["credential"] == {"type": "token_exchange", "name": "openai"}
    # Another workload gets its own token, on its own account.
    other = "spiffe://example.org/ns/research/sa/agent"
    assert chat(gw, "openai", other).status_code == 200
    claims = tokens.verify_issued(authorization(gw.requests_seen()[-1]))
    assert (claims["sub"], claims["account"]) == (other, "sa_research")


def test_anthropic_federation_with_a_minted_assertion_bound_to_the_model(gw, tokens):
    gw.reset()
    client = anthropic.Anthropic(base_url=gw.anthropic_base, api_key=svid.mint(BOT), max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI,
                           extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    [seen] = gw.requests_seen()
    headers = dict(seen["headers"])
    claims = tokens.verify_issued(authorization(seen))
    assert (claims["sub"], claims["model"], claims["account"]) == (BOT, "claude-haiku-4-5", "svac_1")
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31,oauth-2025-04-20"
    assert "x-api-key" not in headers


def test_a_minted_jwt_verifies_against_the_printed_jwks(gw):
    gw.reset()
    r = chat(gw, "private", BOT, model="llama-3")
    assert r.status_code == 200, r.text
    claims = verify_es256(authorization(gw.requests_seen()[0]), keys_of(gw.extra["jwks"]))
    assert (claims["iss"], claims["sub"], claims["aud"], claims["model"]) == \
        (ISSUER, BOT, "https://vllm.internal", "llama-3")
    assert claims["exp"] - claims["iat"] == 60
    # A new JWT, with a new jti, for every request.
    chat(gw, "private", BOT, model="llama-3")
    second = verify_es256(authorization(gw.requests_seen()[1]), keys_of(gw.extra["jwks"]))
    assert second["jti"] != claims["jti"]


def test_the_generic_form_exchange(gw, tokens):
    gw.reset()
    r = chat(gw, "sts", BOT, model="llama-3")
    assert r.status_code == 200, r.text
    claims = tokens.verify_issued(authorization(gw.requests_seen()[0]))
    assert (claims["sub"], claims["model"]) == (BOT, "llama-3")


def test_fifty_concurrent_requests_cause_one_exchange(gw, tokens):
    agent = "spiffe://example.org/ns/research/sa/concurrent"
    before = tokens.count("/oauth/token")
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(lambda _: chat(gw, "openai", agent).status_code, range(50)))
    assert statuses == [200] * 50
    assert tokens.count("/oauth/token") - before == 1


def test_a_token_is_refetched_after_it_expires(gw, tokens):
    agent = "spiffe://example.org/ns/research/sa/expiring"
    tokens.route("/oauth/token", expires_in=3)
    try:
        before = tokens.count("/oauth/token")
        assert chat(gw, "openai", agent).status_code == 200
        assert chat(gw, "openai", agent).status_code == 200
        assert tokens.count("/oauth/token") - before == 1
        time.sleep(2.5)  # expires_in 3 s less the 1 s margin
        assert chat(gw, "openai", agent).status_code == 200
        assert tokens.count("/oauth/token") - before == 2
    finally:
        tokens.route("/oauth/token", expires_in=300)


@pytest.mark.parametrize("mode,detail", [
    ("status_500", "token_endpoint_status"),
    ("not_json", "token_response_invalid"),
    ("no_expires_in", "token_response_invalid"),
    ("mac_token", "token_type_unsupported"),
    ("slow", "token_endpoint_timeout"),
])
def test_a_failed_exchange_is_503_audited_and_nothing_forwarded(gw, tokens, mode, detail):
    tokens.route("/flaky/token", mode=mode, delay=2.0)
    try:
        for attempt in range(2):  # every time, not only the first
            gw.reset()
            agent = f"spiffe://example.org/ns/research/sa/{mode.replace('_', '-')}"
            r = chat(gw, "flaky", agent, model="llama-3")
            assert (r.status_code, r.headers["x-modelgate-reason"]) == (503, "credential_unavailable"), r.text
            record = gw.audit_for(r.headers["x-request-id"])
            assert (record["decision"], record["reason"], record["detail"]) == ("deny", "credential_unavailable", detail)
            assert gw.requests_seen() == []
    finally:
        tokens.route("/flaky/token", mode="ok")


def test_a_token_server_that_is_down_is_503(gw):
    gw.reset()
    r = chat(gw, "down", BOT, model="llama-3")
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (503, "credential_unavailable")
    assert gw.audit_for(r.headers["x-request-id"])["detail"] == "token_endpoint_unreachable"
    assert gw.requests_seen() == []


def test_a_workload_without_a_provider_account_is_503(gw, tokens):
    """accounts map workloads to provider accounts: an allowed workload no
    entry names has no account to act as."""
    gw.reset()
    before = tokens.count("/oauth/token")
    r = chat(gw, "openai", "spiffe://example.org/ns/ops/sa/cron")
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (503, "credential_unavailable")
    assert gw.audit_for(r.headers["x-request-id"])["detail"] == "no_account"
    assert gw.requests_seen() == [] and tokens.count("/oauth/token") == before


def test_token_metrics(gw):
    text = requests.get(f"{gw.admin_url}/stats", params={"filter": "modelgate.token"}, timeout=5).text
    stats = {k: int(v) for k, v in (line.split(": ") for line in text.splitlines() if ": " in line)}
    assert stats["wasmcustom.modelgate.token.exchanges"] >= 4
    assert stats["wasmcustom.modelgate.token.hits"] >= 49
    assert stats["wasmcustom.modelgate.token.failures.token_endpoint_status"] >= 2
