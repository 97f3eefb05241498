"""Every trust boundary an attack review broke, one named test per class
(docs/threat-model.md lists each boundary with its test). Each attack is
refused with its documented status and reason, leaves exactly one
well-formed audit record, and nothing reaches the stand-in provider.
"""

import json
import urllib.parse

import pytest
import requests
import yaml

import svid
from conftest import running_gateway
from harness import ENVOY_YAML, free_port, policy_text
from test_bypasses import FILE, form, post_form, refused
from test_e2e import BOT, HI, RESEARCH
from test_identity import FIXTURES, FRONT_PROXY_ID, behind_a_front_proxy

CHAT = "/openai/v1/chat/completions"


def shipped_policy() -> dict:
    return json.loads(policy_text(yaml.safe_load(ENVOY_YAML.read_text())))


def pem(name: str) -> str:
    return (FIXTURES / f"{name}.pem").read_text()


def xfcc(cert_name: str, by: str = FRONT_PROXY_ID, with_hash: bool = True) -> str:
    """An x-forwarded-client-cert element as a front proxy forwarding the
    certificate writes it (`set_current_client_cert_details: {cert: true}`),
    here forged by whoever sends it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    cert = x509.load_pem_x509_certificate(pem(cert_name).encode())
    element = f'By={by};'
    if with_hash:
        element += f'Hash={cert.fingerprint(hashes.SHA256()).hex()};'
    der_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return element + f'Cert="{urllib.parse.quote(der_pem, safe="")}"'


XFCC_POLICY = {"identity": {"x509_svid": {"source": "xfcc", "trusted_hop": FRONT_PROXY_ID}, "require": "x509"}}


def tls(name: str) -> dict:
    return {"verify": str(FIXTURES / "ca.pem"), "cert": (str(FIXTURES / f"{name}.pem"), str(FIXTURES / f"{name}.key"))}


def ask(url: str, **kwargs) -> requests.Response:
    return requests.post(f"{url}{CHAT}", json={"model": "gpt-4o-mini", "messages": HI}, timeout=10, **kwargs)


# --- chain of custody: x-forwarded-client-cert ----------------------------------------------------


def test_a_forged_xfcc_over_plaintext_is_refused_and_nothing_reaches_the_provider():
    """The attack as found: the listener configured for a trusted hop is
    reached directly over plaintext, with the trusted hop's `By`, another
    workload's certificate and a matching Hash."""
    def keeps_xfcc(config, _):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["forward_client_cert_details"] = "ALWAYS_FORWARD_ONLY"

    with running_gateway(XFCC_POLICY, mutate=keeps_xfcc) as gw:
        gw.reset()
        r = ask(gw.url, headers={"x-forwarded-client-cert": xfcc("research")})
        record = refused(gw, r, 401, "invalid_svid", "xfcc_no_verified_peer")
        assert record["workload"] is None or record["workload"].get("spiffe_id") != RESEARCH


@pytest.fixture(scope="module")
def fronted():
    """A gateway behind a front proxy over mTLS; the trust domain's X.509
    authority configured, so forwarded leaves are checked again."""
    ports = {}

    def mutate(config, _):
        ports["front"] = free_port()
        behind_a_front_proxy(config, ports)

    trust = shipped_policy()["trust_domains"]
    for td in trust:
        if td["name"] == "example.org":
            td["x509_authorities"] = [pem("ca")]
    with running_gateway({**XFCC_POLICY, "trust_domains": trust}, mutate=mutate) as gw:
        gw.direct = gw.url.replace("http://127.0.0.1", "https://localhost")
        gw.front = f"https://localhost:{ports['front']}"
        yield gw


def test_a_workload_sending_its_own_xfcc_over_mtls_is_refused(fronted):
    """Any CA-issued workload certificate, straight to the gateway, with
    the trusted hop's By and another workload's certificate: refused."""
    fronted.reset()
    r = ask(fronted.direct, headers={"x-forwarded-client-cert": xfcc("research")}, **tls("bot"))
    refused(fronted, r, 401, "invalid_svid", "xfcc_untrusted_peer")


def test_a_trusted_hop_forwarding_a_leaf_no_configured_authority_issued_is_refused(fronted):
    """Even the trusted hop's word is checked where the authorities are
    configured: a self-made CA's certificate for the bot is refused."""
    fronted.reset()
    r = ask(fronted.direct, headers={"x-forwarded-client-cert": xfcc("impostor_bot")}, **tls("server"))
    refused(fronted, r, 401, "invalid_svid", "x509_untrusted_issuer")


def test_the_trusted_hop_identifies_the_caller_and_its_xfcc_never_reaches_the_provider(fronted):
    fronted.reset()
    r = ask(fronted.front, **tls("research"))
    assert r.status_code in (200, 403), r.text
    record = fronted.audit_for(r.headers["x-request-id"])
    assert record["workload"]["spiffe_id"] == RESEARCH
    r = ask(fronted.front, **tls("bot"))
    assert r.status_code == 200, r.text
    assert fronted.audit_for(r.headers["x-request-id"])["workload"]["spiffe_id"] == BOT
    seen = fronted.requests_seen()
    assert seen and all(k != "x-forwarded-client-cert" for s in seen for k, _ in s["headers"])


# --- check what the provider will read: the prompt guard ----------------------------------------


SECRET = "sk-proj-" + "Ab3x" * 12


@pytest.mark.parametrize("escape", ["\n", "\t", '"', "\\", "/"])
def test_a_secret_right_after_a_json_escape_never_reaches_the_provider(gateway, escape):
    gateway.reset()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"config:{escape}{SECRET}"}]}
    r = requests.post(f"{gateway.url}{CHAT}", json=body, headers={"authorization": f"Bearer {svid.mint(BOT)}"}, timeout=10)
    record = refused(gateway, r, 403, "prompt_blocked", "openai_key")
    assert SECRET not in json.dumps(record)


def test_a_secret_in_a_transcription_prompt_never_reaches_the_provider(gateway):
    gateway.reset()
    prompt = ('Content-Disposition: form-data; name="prompt"', b"names: AKIAIOSFODNN7EXAMPLE")
    model = ('Content-Disposition: form-data; name="model"', b"whisper-1")
    r = post_form(gateway, form([model, prompt, FILE]), workload=RESEARCH)
    refused(gateway, r, 403, "prompt_blocked", "aws_access_key")
    # The same form without the secret goes through.
    r = post_form(gateway, form([model, ('Content-Disposition: form-data; name="prompt"', b"names: Ada"), FILE]),
                  workload=RESEARCH)
    assert r.status_code == 200, r.text


# --- decide in the provider's namespace ----------------------------------------------------------


@pytest.mark.parametrize("surface", ["/azure/openai/v1/chat/completions", "/azure/openai/responses",
                                     "/azure/openai/v1/responses"])
def test_an_azure_deployment_of_a_denied_model_is_refused_on_every_surface(gateway, surface):
    """The shipped policy: research may call anything but gpt-3.5-*; its
    deployment legacy-gpt serves gpt-3.5-turbo, named in the body."""
    gateway.reset()
    body = {"model": "legacy-gpt", "messages": HI} if "chat" in surface else {"model": "legacy-gpt", "input": "hi"}
    r = requests.post(f"{gateway.url}{surface}", json=body, timeout=10,
                      headers={"api-key": svid.mint(RESEARCH), "content-type": "application/json"})
    record = refused(gateway, r, 403, "model_not_allowed")
    assert (record["rule"], record["model"], record["requested_model"]) == ("no-legacy", "gpt-3.5-turbo", "legacy-gpt")


def test_a_nested_azure_deployment_is_mapped_too(gateway):
    gateway.reset()
    body = {"model": "prod-gpt", "input": "draw", "tools": [{"type": "image_generation", "model": "unmapped-dalle"}]}
    r = requests.post(f"{gateway.url}/azure/openai/v1/responses", json=body, timeout=10,
                      headers={"api-key": svid.mint(RESEARCH)})
    refused(gateway, r, 403, "model_not_allowed", "unknown_deployment")


@pytest.mark.parametrize("model_id", [
    "us.anthropic.claude-opus-4-1-20250805-v1:0",
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-1-20250805-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
])
def test_a_bedrock_profile_or_arn_is_decided_as_its_model_or_refused(gateway, model_id):
    """The bot may call claude-haiku-4-5 only: another model behind a
    profile or an ARN is refused, and an opaque ARN is refused unmapped."""
    gateway.reset()
    encoded = urllib.parse.quote(model_id, safe="")
    r = requests.post(f"{gateway.url}/bedrock/model/{encoded}/converse", timeout=10,
                      json={"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                            "inferenceConfig": {"maxTokens": 8}},
                      headers={"authorization": f"Bearer {svid.mint(BOT)}"})
    record = refused(gateway, r, 403, "model_not_allowed")
    if "application-inference-profile" in model_id:
        assert record["detail"] == "unmapped_model_arn"
    else:
        assert record["model"] == "anthropic.claude-opus-4-1-20250805-v1:0"


# --- no header decides a peer address ------------------------------------------------------------

NETWORK_RULES = [
    {"id": "office-only", "effect": "allow", "workloads": [BOT], "providers": ["openai"], "models": ["gpt-4.1-mini"],
     "when": {"source_cidrs": ["10.0.0.0/8"]}},
    {"id": "local-only", "effect": "allow", "workloads": [BOT], "providers": ["openai"], "models": ["gpt-4o-mini"],
     "when": {"source_cidrs": ["127.0.0.0/8"]}},
    {"id": "no-o3-from-office", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"],
     "models": ["o3"], "when": {"source_cidrs": ["10.0.0.0/8"]}},
    {"id": "research", "effect": "allow", "workloads": [RESEARCH], "providers": ["openai"], "models": ["o3"]},
]


@pytest.fixture(scope="module")
def xff_listener():
    """A listener without use_remote_address (Envoy's default, Istio's
    sidecar outbound): Envoy takes source.address from x-forwarded-for."""
    def trusts_xff(config, _):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["use_remote_address"] = False

    with running_gateway({"rules": NETWORK_RULES}, mutate=trusts_xff) as gw:
        yield gw


def chat_as(gw, workload, model, **headers):
    return requests.post(f"{gw.url}{CHAT}", json={"model": model, "messages": HI}, timeout=10,
                         headers={"authorization": f"Bearer {svid.mint(workload)}", **headers})


def test_a_forged_x_forwarded_for_satisfies_no_network_condition(xff_listener):
    xff_listener.reset()
    r = chat_as(xff_listener, BOT, "gpt-4.1-mini", **{"x-forwarded-for": "10.1.2.3"})
    record = refused(xff_listener, r, 403, "condition_not_met", "source_cidrs")
    assert record["client"] == {"address": "10.1.2.3:0", "from_header": True}
    assert {"rule": "office-only", "condition": "source_cidrs", "ok": False, "unknown": True} in record["conditions"]
    log = xff_listener.envoy_log.read_text()
    assert "source_cidrs conditions fail closed" in log and "10.1.2.3" not in log


def test_a_forged_x_forwarded_for_dodges_no_network_deny_rule(xff_listener):
    """A deny rule on a network the request may come from holds when the
    address may be the caller's own words."""
    xff_listener.reset()
    r = chat_as(xff_listener, RESEARCH, "o3", **{"x-forwarded-for": "192.0.2.1"})
    record = refused(xff_listener, r, 403, "model_not_allowed")
    assert record["rule"] == "no-o3-from-office"


def test_the_direct_peer_still_decides_without_a_forwarded_header(xff_listener):
    xff_listener.reset()
    assert chat_as(xff_listener, BOT, "gpt-4o-mini").status_code == 200
    r = chat_as(xff_listener, RESEARCH, "o3")
    assert r.status_code == 200, r.text
    record = xff_listener.audit_for(r.headers["x-request-id"])
    assert "from_header" not in record["client"] and record["client"]["address"].startswith("127.0.0.1:")


# --- claims: a deny condition that cannot read its claim holds -----------------------------------

CLAIM_RULES = [
    {"id": "no-gpt4o-for-contractors", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"],
     "models": ["gpt-4o"], "when": {"claims": {"role": ["contractor"]}}},
    {"id": "research", "effect": "allow", "workloads": [RESEARCH], "providers": ["openai"], "models": ["gpt-4o"]},
]


@pytest.fixture(scope="module")
def claims_gateway():
    with running_gateway({"rules": CLAIM_RULES}) as gw:
        yield gw


@pytest.mark.parametrize("name,claims", [
    ("array_with_a_number", {"role": ["contractor", 7]}),
    ("past_the_kept_claims", {**{f"c{i:02}": "x" for i in range(40)}, "role": "contractor"}),
])
def test_a_deny_rule_on_a_claim_the_svid_hides_still_holds(claims_gateway, name, claims):
    claims_gateway.reset()
    token = svid.mint(RESEARCH, claims_extra=claims)
    r = requests.post(f"{claims_gateway.url}{CHAT}", json={"model": "gpt-4o", "messages": HI}, timeout=10,
                      headers={"authorization": f"Bearer {token}"})
    record = refused(claims_gateway, r, 403, "model_not_allowed")
    assert record["rule"] == "no-gpt4o-for-contractors"
    assert {"rule": "no-gpt4o-for-contractors", "condition": "claims.role", "ok": True, "unknown": True} \
        in record["conditions"]


def test_a_claim_read_in_full_decides_as_before(claims_gateway):
    claims_gateway.reset()
    for role, status in [("engineer", 200), ("contractor", 403)]:
        r = requests.post(f"{claims_gateway.url}{CHAT}", json={"model": "gpt-4o", "messages": HI}, timeout=10,
                          headers={"authorization": f"Bearer {svid.mint(RESEARCH, claims_extra={'role': role})}"})
        assert r.status_code == status, r.text
