"""Bundle endpoints end to end: the gateway fetches its trust bundles through
an Envoy cluster from a stand-in SPIFFE bundle endpoint, rotates keys
without a restart, keeps the last good bundle when the endpoint fails, and
answers 503 for a domain it has no bundle for yet. Envoy runs its usual
workers, each a VM of its own: one fetches at a time, all install."""

import re
import time

import pytest
import requests
from jwcrypto import jwk

import svid
from bundle_server import BundleServer, cluster
from conftest import running_gateway

HI = [{"role": "user", "content": "hi"}]
BOT = "spiffe://example.org/ns/support/sa/bot"
LATE = "spiffe://late.example/ns/app/sa/agent"


KEY_A, KEY_B, KEY_LATE = svid.new_ec_key("rot-a"), svid.new_ec_key("rot-b"), svid.new_ec_key("late-1")
X509_AUTHORITY = svid.new_ec_key("x509")


def authority(key: jwk.JWK) -> dict:
    return {**key.export_public(as_dict=True), "use": "jwt-svid"}


def bundle(*keys, sequence: int | None = None, hint: int | None = None) -> dict:
    doc = {"keys": [authority(k) for k in keys]}
    # X.509 authorities and members a consumer must ignore ride along, as
    # they do in a real SPIRE bundle.
    doc["keys"] += [{**X509_AUTHORITY.export_public(as_dict=True), "use": "x509-svid", "x5c": ["MIIBfake"]},
                    {"kty": "OKP", "crv": "Ed25519", "use": "jwt-svid", "kid": "unusable", "x": "AA"}]
    doc["x-vendor"] = {"anything": True}
    if sequence is not None:
        doc["spiffe_sequence"] = sequence
    if hint is not None:
        doc["spiffe_refresh_hint"] = hint
    return doc




@pytest.fixture(scope="module")
def endpoint():
    server = BundleServer()
    server.serve("/example", bundle(KEY_A, sequence=1))
    server.serve("/late", status=503, body=b"not yet")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(endpoint):
    policy = {
        "trust_domains": [
            {"name": "example.org",
             "bundle_endpoint": {"cluster": "bundles", "authority": "spire.example", "path": "/example",
                                 "refresh_seconds": 1, "timeout_ms": 500}},
            {"name": "late.example",
             # An OIDC discovery provider's JWKS (SPIRE's serves use "sig").
             "bundle_endpoint": {"cluster": "bundles", "path": "/late", "refresh_seconds": 1, "timeout_ms": 500,
                                 "format": "jwks"}},
        ],
        "rules": [
            {"id": "bot", "effect": "allow", "workloads": [BOT], "providers": ["openai"], "models": ["gpt-4o-mini"]},
            {"id": "late", "effect": "allow", "workloads": ["spiffe://late.example/**"], "providers": ["*"],
             "models": ["*"]},
        ],
    }

    def mutate(config, _ports):
        config["static_resources"]["clusters"].append(cluster("bundles", endpoint.port))

    with running_gateway(policy, mutate=mutate) as g:
        yield g


def call(gw, token):
    return requests.post(f"{gw.openai_base}/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                         headers={"authorization": f"Bearer {token}"}, timeout=10)


def stats(gw) -> dict:
    """modelgate's bundle metrics, by `<trust domain>.<name>`."""
    text = requests.get(f"{gw.admin_url}/stats", params={"filter": "modelgate.bundle"}, timeout=5).text
    return {k: int(v) for k, v in re.findall(r"modelgate\.bundle\.(\S+): (\d+)", text)}


def eventually(check, timeout=8.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_a_domain_without_a_bundle_yet_answers_503_then_works(gw, endpoint):
    token = svid.mint(LATE, key=KEY_LATE)
    r = call(gw, token)
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (503, "bundle_unavailable")
    record = gw.audit_for(r.headers["x-request-id"])
    assert (record["decision"], record["reason"]) == ("deny", "bundle_unavailable")
    assert not [s for s in gw.requests_seen() if "late" in str(s)]
    # The endpoint comes up: the domain's tokens are accepted, no restart.
    endpoint.serve("/late", {"keys": [{**KEY_LATE.export_public(as_dict=True), "use": "sig", "alg": "ES256"}]})
    eventually(lambda: call(gw, token).status_code == 200, timeout=40, what="late.example bundle loaded")


def test_rotation_replaces_keys_and_cached_verifications(gw, endpoint):
    old = svid.mint(BOT, key=KEY_A)
    eventually(lambda: call(gw, old).status_code == 200, what="first bundle loaded")
    assert call(gw, old).status_code == 200  # now in every worker's cache
    new = svid.mint(BOT, key=KEY_B)
    assert call(gw, new).headers["x-modelgate-reason"] == "invalid_svid"

    endpoint.serve("/example", bundle(KEY_B, sequence=2))
    eventually(lambda: call(gw, new).status_code == 200, what="rotated bundle installed")
    # One worker fetched it; the others install it on their next tick (0.5 s).
    time.sleep(0.6)
    # Every worker has the new bundle: the removed key's token is refused,
    # although it was verified (and cached) before.
    for _ in range(8):
        r = call(gw, old)
        assert (r.status_code, r.headers["x-modelgate-reason"]) == (401, "invalid_svid")
        assert gw.audit_for(r.headers["x-request-id"])["detail"] == "unknown_kid"
        assert call(gw, new).status_code == 200
    assert stats(gw)["example.org.sequence"] == 2


@pytest.mark.parametrize("failure", ["status", "garbage", "older", "reset", "slow", "no_kid"])
def test_the_last_good_bundle_stays(gw, endpoint, failure):
    endpoint.serve("/example", bundle(KEY_B, sequence=2))
    token, removed = svid.mint(BOT, key=KEY_B), svid.mint(BOT, key=KEY_A)
    eventually(lambda: call(gw, token).status_code == 200, what="bundle B in force")
    before = stats(gw).get("example.org.failures", 0)
    if failure == "status":
        endpoint.serve("/example", status=500, body=b"internal error")
    elif failure == "garbage":
        endpoint.serve("/example", body=b"<html>maintenance</html>")
    elif failure == "older":
        endpoint.serve("/example", bundle(KEY_A, sequence=1))
    elif failure == "reset":
        endpoint.serve("/example", reset=True)
    elif failure == "slow":
        endpoint.serve("/example", bundle(KEY_A, sequence=9), delay=1.5)
    elif failure == "no_kid":
        doc = bundle(KEY_A, sequence=9)
        del doc["keys"][0]["kid"]
        endpoint.serve("/example", doc)
    eventually(lambda: stats(gw).get("example.org.failures", 0) >= before + 2, what=f"{failure}: two failed fetches")
    assert call(gw, token).status_code == 200
    r = call(gw, removed)
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (401, "invalid_svid")
    assert stats(gw)["example.org.sequence"] == 2
    assert "the last good bundle stays" in gw.envoy_log.read_text()
    endpoint.serve("/example", bundle(KEY_B, sequence=2))


def test_one_worker_fetches_at_a_time(gw, endpoint):
    """Envoy's workers each run a VM; the shared lease lets one fetch per
    refresh, not one per VM, and never two at once."""
    endpoint.serve("/example", bundle(KEY_B, sequence=2), delay=0.3)
    time.sleep(1.5)
    start = time.monotonic()
    time.sleep(6)
    fetches = [f for f in endpoint.fetches_of("/example") if f[0] >= start]
    endpoint.serve("/example", bundle(KEY_B, sequence=2))
    # refresh_seconds 1, less up to a tenth of jitter, plus the 0.3 s answer
    # and the 0.5 s tick: between 4 and 8 fetches in 6 s, one at a time.
    assert 3 <= len(fetches) <= 8, fetches
    for (s1, e1), (s2, _) in zip(fetches, fetches[1:]):
        assert s2 >= e1 - 0.01, f"overlapping fetches {fetches}"
    assert stats(gw)["example.org.refreshes"] >= len(fetches)
