"""The host boundary never panics: every shape a call-out's answer can take
through the real Envoy — cut after its headers, reset before them, stalled
past the call's timeout, no final status, oversized, mislabelled, broken
JSON — is refused with 503 `credential_unavailable`, audited once, and
nothing reaches the provider; and the VM lives: the next request on the
same worker (Envoy runs one) succeeds, and Envoy counts no VM failure.

Before host.rs read every status itself, the first of these trapped the
VM inside `on_http_call_response` (the SDK panicked on Envoy's
`BadArgument` for the headers of a call that had failed): the request
hung and every later one on the worker got Envoy's own 503, unaudited."""

import re
import time

import pytest
import requests
from jwcrypto import jwk

import svid
from bundle_server import BundleServer, cluster
from conftest import running_gateway
from token_server import TokenServer

HI = [{"role": "user", "content": "hi"}]
TIMEOUT_MS = 1000

PROVIDERS = [
    {"name": "edge", "api": "openai_compatible", "match": {"path_prefix": "/edge/"},
     "credential": {"type": "token_exchange", "cluster": "token_server", "path": "/edge/token",
                    "authority": "sts.internal", "grant": "token_exchange", "subject": "svid",
                    "timeout_ms": TIMEOUT_MS}},
]
RULES = [{"id": "research", "effect": "allow", "workloads": ["spiffe://example.org/ns/research/**"],
          "providers": ["*"], "models": ["*"]}]


def token_cluster(name: str, port: int) -> dict:
    return {"name": name, "type": "STATIC", "connect_timeout": "0.5s", "load_assignment": {
        "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}}}]}]}}


@pytest.fixture(scope="module")
def tokens():
    server = TokenServer()
    key = svid.load_key().export_public(as_dict=True)
    server.route("/edge/token", grant="token_exchange", encoding="form", keys={key["kid"]: jwk.JWK(**key)},
                 audience=svid.AUDIENCE, mode="ok")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tokens):
    def mutate(config, _ports):
        config["static_resources"]["clusters"].append(token_cluster("token_server", tokens.port))
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["route_config"]["virtual_hosts"][0]["routes"].insert(0, {
            "match": {"prefix": "/edge/"}, "route": {"cluster": "llm_upstream", "prefix_rewrite": "/", "timeout": "30s"}})

    # One worker: the request after a refusal runs in the very VM that
    # handled the broken answer.
    with running_gateway({"providers": PROVIDERS, "rules": RULES}, mutate=mutate, extra_args=("--concurrency", "1")) as g:
        yield g


def chat(gw, agent: str):
    return requests.post(f"{gw.url}/edge/v1/chat/completions", json={"model": "llama-3", "messages": HI},
                         headers={"authorization": f"Bearer {svid.mint(agent)}"}, timeout=15)


def vm_failures(gw) -> dict:
    """Envoy's wasm VM counters: VMs created, reloads after a failure. A VM
    that traps under `fail_closed` (as deployed) moves none of them in Envoy
    1.40 — it is only in the log (`vm_traps`) — but a reload or a new VM
    would show here."""
    text = requests.get(f"{gw.admin_url}/stats", params={"filter": "^wasm\\."}, timeout=5).text
    stats = {k: int(v) for k, v in re.findall(r"^(\S+): (\d+)$", text, re.M)}
    return {k: v for k, v in stats.items() if re.search(r"(created|vm_reload|fail)", k)}


def vm_traps(gw) -> list:
    """Envoy's log lines of a VM that panicked or trapped: with the SDK's
    panic hook, a panic logs `panicked at …`, then Envoy logs the trap
    (`proxy_on_http_call_response failed: Uncaught RuntimeError: unreachable`)."""
    return [line for line in gw.envoy_log.read_text().splitlines()
            if "panicked at" in line or "Uncaught RuntimeError" in line or "unexpected status" in line]


def refused_then_alive(gw, tokens, mode: str, detail: str, message: str):
    """One request meets the broken answer of `mode`: a clear refusal,
    audited once, nothing forwarded. Then the endpoint heals and the next
    request on the same worker goes through, with no VM failure counted."""
    agent = f"spiffe://example.org/ns/research/sa/{mode.replace('_', '-')}"
    before = vm_failures(gw)
    assert "wasm.modelgate.vm_reload" in before and any(k.endswith(".created") for k in before), before
    tokens.route("/edge/token", mode=mode, delay=TIMEOUT_MS / 1000 + 1.5)
    try:
        gw.reset()
        exchanges = tokens.count("/edge/token")
        started = time.monotonic()
        r = chat(gw, agent)
        assert (r.status_code, r.headers.get("x-modelgate-reason")) == (503, "credential_unavailable"), r.text
        assert time.monotonic() - started < TIMEOUT_MS / 1000 + 2, "the refusal waited past the call's timeout"
        assert r.json()["error"]["code"] == "credential_unavailable", r.text
        assert message in r.json()["error"]["message"], r.text
        assert tokens.count("/edge/token") == exchanges + 1
        record = gw.audit_for(r.headers["x-request-id"])
        assert (record["decision"], record["reason"], record["detail"]) == ("deny", "credential_unavailable", detail)
        assert gw.requests_seen() == []
    finally:
        tokens.route("/edge/token", mode="ok")
    r = chat(gw, agent)
    assert r.status_code == 200, r.text
    assert len(gw.requests_seen()) == 1
    assert gw.audit_for(r.headers["x-request-id"])["decision"] == "allow"
    assert vm_failures(gw) == before
    assert vm_traps(gw) == []


def test_a_token_answer_cut_after_its_headers_is_refused_and_the_worker_lives(gw, tokens):
    refused_then_alive(gw, tokens, "cut_after_headers", "token_endpoint_unreachable", "reset or timeout")


def test_a_token_endpoint_that_resets_before_answering_is_refused_and_the_worker_lives(gw, tokens):
    refused_then_alive(gw, tokens, "reset_before_headers", "token_endpoint_unreachable", "Envoy could not reach")


def test_a_token_answer_that_stalls_past_the_timeout_is_refused_and_the_worker_lives(gw, tokens):
    refused_then_alive(gw, tokens, "stall_after_headers", "token_endpoint_unreachable", "reset or timeout")


def test_an_informational_answer_with_no_final_one_is_refused_and_the_worker_lives(gw, tokens):
    refused_then_alive(gw, tokens, "informational_only", "token_endpoint_unreachable", "Envoy could not reach")


def test_an_answer_with_an_odd_status_is_refused_and_the_worker_lives(gw, tokens):
    # Envoy's codec refuses the status line: its router answers 502.
    refused_then_alive(gw, tokens, "odd_status", "token_endpoint_status", "answered 502")


def test_a_token_answer_over_the_readers_limit_is_refused_and_the_worker_lives(gw, tokens):
    refused_then_alive(gw, tokens, "oversized", "token_response_invalid", "too large")


def test_a_token_answer_over_a_mebibyte_is_refused_and_the_worker_lives(gw, tokens):
    refused_then_alive(gw, tokens, "huge", "token_response_invalid", "too large")


def test_a_token_answer_labelled_as_a_web_page_is_refused_and_the_worker_lives(gw, tokens):
    refused_then_alive(gw, tokens, "wrong_content_type", "token_response_invalid", "not JSON")


def test_a_token_answer_of_broken_json_is_refused_and_the_worker_lives(gw, tokens):
    refused_then_alive(gw, tokens, "garbage_json", "token_response_invalid", "not a JSON object")


# Bundle endpoints: the same boundary, from the root context's call-outs.

BOT = "spiffe://example.org/ns/support/sa/bot"
KEY_A, KEY_B = svid.new_ec_key("edge-a"), svid.new_ec_key("edge-b")


def bundle(key, sequence: int) -> dict:
    return {"keys": [{**key.export_public(as_dict=True), "use": "jwt-svid"}], "spiffe_sequence": sequence}


@pytest.fixture(scope="module")
def bundles():
    server = BundleServer()
    server.serve("/example", bundle(KEY_A, 1))
    yield server
    server.close()


@pytest.fixture(scope="module")
def bundle_gw(bundles):
    policy = {
        "trust_domains": [{"name": "example.org", "bundle_endpoint": {
            "cluster": "bundles", "authority": "spire.example", "path": "/example", "refresh_seconds": 1,
            "timeout_ms": 500}}],
        "rules": [{"id": "bot", "effect": "allow", "workloads": [BOT], "providers": ["openai"],
                   "models": ["gpt-4o-mini"]}],
    }

    def mutate(config, _ports):
        config["static_resources"]["clusters"].append(cluster("bundles", bundles.port))

    with running_gateway(policy, mutate=mutate, extra_args=("--concurrency", "1")) as g:
        yield g


def bundle_stats(gw) -> dict:
    text = requests.get(f"{gw.admin_url}/stats", params={"filter": "modelgate.bundle"}, timeout=5).text
    return {k: int(v) for k, v in re.findall(r"modelgate\.bundle\.(\S+): (\d+)", text)}


def call(gw, token):
    return requests.post(f"{gw.openai_base}/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                         headers={"authorization": f"Bearer {token}"}, timeout=10)


def eventually(check, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_a_bundle_answer_cut_mid_body_keeps_the_last_good_bundle_and_the_worker_lives(bundle_gw, bundles):
    token_a, token_b = svid.mint(BOT, key=KEY_A), svid.mint(BOT, key=KEY_B)
    eventually(lambda: call(bundle_gw, token_a).status_code == 200, what="bundle A in force")
    before_vm = vm_failures(bundle_gw)
    before = bundle_stats(bundle_gw).get("example.org.failures", 0)
    # A newer bundle with key B, cut halfway by a reset: never installed.
    bundles.serve("/example", bundle(KEY_B, 2), cut=True)
    try:
        eventually(lambda: bundle_stats(bundle_gw).get("example.org.failures", 0) >= before + 2,
                   what="two cut fetches counted as failures")
        assert call(bundle_gw, token_a).status_code == 200
        r = call(bundle_gw, token_b)
        assert (r.status_code, r.headers["x-modelgate-reason"]) == (401, "invalid_svid")
        assert bundle_gw.audit_for(r.headers["x-request-id"])["reason"] == "invalid_svid"
        assert bundle_stats(bundle_gw)["example.org.sequence"] == 1
        assert "the last good bundle stays" in bundle_gw.envoy_log.read_text()
    finally:
        bundles.serve("/example", bundle(KEY_B, 2))
    # The VM fetches again, whole this time, and installs it.
    eventually(lambda: call(bundle_gw, token_b).status_code == 200, what="bundle B installed after the cut")
    assert vm_failures(bundle_gw) == before_vm
    assert vm_traps(bundle_gw) == []
