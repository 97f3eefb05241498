"""X.509-SVIDs end to end: a workload calls over mTLS with its SPIFFE
certificate and no token at all. Envoy's SPIFFE certificate validator checks
the chain and expiry against the trust domain's CA; modelgate checks what
the validator leaves open (exactly one URI SAN, a valid SPIFFE ID with a
path) and that a JWT-SVID, when sent too, names the same workload.
Handshakes Envoy refuses leave a record through a listener access log.
"""

import json
import time

import pytest
import requests

import svid
from conftest import running_gateway
from harness import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "x509"
BOT = "spiffe://example.org/ns/support/sa/bot"
HI = [{"role": "user", "content": "hi"}]


def with_mtls(config, _ports):
    listener = config["static_resources"]["listeners"][0]
    chain = listener["filter_chains"][0]
    chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificates": [{"certificate_chain": {"filename": str(FIXTURES / "server.pem")},
                                  "private_key": {"filename": str(FIXTURES / "server.key")}}],
            "validation_context": {"custom_validator_config": {
                "name": "envoy.tls.cert_validator.spiffe",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig",
                    "trust_domains": [{"name": "example.org", "trust_bundle": {"filename": str(FIXTURES / "ca.pem")}}]}}}}}}
    hcm = chain["filters"][0]["typed_config"]
    audit_log = hcm["access_log"][0]["typed_config"]["path"]
    # A handshake Envoy refuses never reaches modelgate: this listener log
    # writes its record, in the audit log's shape.
    listener["access_log"] = [{"name": "envoy.access_loggers.file", "filter": {"extension_filter": {
        "name": "envoy.access_loggers.extension_filters.cel",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                         "expression": "connection.transport_failure_reason != ''"}}}, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": audit_log,
        "log_format": {"json_format": {
            "time": "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%", "decision": "deny", "reason": "tls_handshake_failed",
            "detail": "%DOWNSTREAM_TRANSPORT_FAILURE_REASON%", "client": {"address": "%DOWNSTREAM_REMOTE_ADDRESS%"}}}}}]


X509_POLICY = {"identity": {"jwt_svid": {"audiences": [svid.AUDIENCE]}, "x509_svid": {"source": "connection"}, "require": "any"}}


@pytest.fixture(scope="module")
def mtls():
    with running_gateway(X509_POLICY, mutate=with_mtls) as gw:
        gw.url = gw.url.replace("http://127.0.0.1", "https://localhost")
        yield gw


def call(gw, cert: str | None, model="gpt-4o-mini", token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{gw.url}/openai/v1/chat/completions", json={"model": model, "messages": HI}, timeout=10,
                         headers=headers, verify=str(FIXTURES / "ca.pem"),
                         cert=(str(FIXTURES / f"{cert}.pem"), str(FIXTURES / f"{cert}.key")) if cert else None)


def test_a_workload_with_only_its_certificate_is_identified_and_audited(mtls):
    mtls.reset()
    r = call(mtls, "bot")
    assert r.status_code == 200, r.text
    record = mtls.audit_for(r.headers["x-request-id"])
    workload = record["workload"]
    assert (workload["spiffe_id"], workload["svid"], workload["jwt"]) == (BOT, "x509", None)
    assert workload["x509"]["serial"] == "1234ABCD" and workload["x509"]["not_after"] == 4922899200
    [seen] = mtls.requests_seen()
    assert [v for k, v in seen["headers"] if k == "authorization"] == [f"Bearer {mtls.openai_key}"]


def test_the_rules_apply_to_x509_identities(mtls):
    mtls.reset()
    r = call(mtls, "bot", model="gpt-4o")
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (403, "model_not_allowed")
    assert mtls.requests_seen() == []


@pytest.mark.parametrize("cert,detail", [
    ("two_uri_sans", "x509_many_uri_sans"),
    ("spiffe_then_https", "x509_many_uri_sans"),
    ("trailing_slash", "x509_not_spiffe_id"),
    ("dot_segment", "x509_not_spiffe_id"),
])
def test_certificates_envoy_passes_but_the_standard_refuses(mtls, cert, detail):
    """Envoy's validator reads only the first URI SAN and checks no path syntax."""
    mtls.reset()
    r = call(mtls, cert)
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (401, "invalid_svid")
    record = mtls.audit_for(r.headers["x-request-id"])
    assert (record["decision"], record["detail"]) == ("deny", detail)
    assert mtls.requests_seen() == []


def test_a_jwt_svid_naming_another_workload_is_a_mismatch(mtls):
    mtls.reset()
    token = svid.mint("spiffe://example.org/ns/research/sa/agent")
    r = call(mtls, "bot", token=token)
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (401, "identity_mismatch")
    assert mtls.audit_for(r.headers["x-request-id"])["detail"] == "jwt_x509_mismatch"
    # The same workload's JWT-SVID agrees: both are audited.
    r = call(mtls, "bot", token=svid.mint(BOT))
    assert r.status_code == 200
    assert mtls.audit_for(r.headers["x-request-id"])["workload"]["svid"] == "jwt+x509"


@pytest.mark.parametrize("cert,reason", [
    (None, "peer did not return a certificate"),
    ("https_only", "no trust bundle store"),
    ("unknown_domain", "no trust bundle store"),
    ("ca_leaf", "cert precheck"),
    ("cert_sign", "cert precheck"),
    ("expired", "expired"),
    ("impostor_bot", "unable to get local issuer"),
])
def test_certificates_envoy_refuses_leave_a_record(mtls, cert, reason):
    before = len(mtls.audit_records())
    with pytest.raises(requests.exceptions.SSLError):
        call(mtls, cert)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(mtls.audit_records()) == before:
        time.sleep(0.05)
    new = mtls.audit_records()[before:]
    assert new and new[-1]["reason"] == "tls_handshake_failed", new
    assert reason in new[-1]["detail"].lower().replace("_", " "), new[-1]


def test_only_failed_handshakes_leave_listener_records(mtls):
    """Runs last: the listener log writes nothing for connections that worked."""
    call(mtls, "bot")
    time.sleep(0.3)
    listener = [r for r in mtls.audit_records() if r["reason"] == "tls_handshake_failed"]
    assert listener and all(r["detail"] for r in listener)


# --- x509_svid.source: xfcc, behind a trusted proxy -------------------------------

# The URI SAN of server.pem: the front proxy's SVID, which it presents to
# workloads (Envoy writes it as XFCC's By) and to the gateway (the verified
# peer modelgate checks). Both must be the trusted hop.
FRONT_PROXY_ID = "spiffe://example.org/modelgate"


def behind_a_front_proxy(config, ports):
    """The gateway listener (mTLS: only the front proxy's own SVID is the
    trusted hop; keeps the XFCC it is given) behind a front listener that
    terminates the workloads' mTLS, appends their certificate to
    x-forwarded-client-cert and calls the gateway with its own SVID."""
    listeners = config["static_resources"]["listeners"]
    gateway = listeners[0]
    gateway_hcm = gateway["filter_chains"][0]["filters"][0]["typed_config"]
    gateway_hcm["forward_client_cert_details"] = "ALWAYS_FORWARD_ONLY"
    front = json.loads(json.dumps(gateway))
    with_mtls(config, ports)
    front["name"] = "front"
    front["address"]["socket_address"]["port_value"] = ports["front"]
    with_mtls({"static_resources": {"listeners": [front]}}, ports)
    front.pop("access_log")
    hcm = front["filter_chains"][0]["filters"][0]["typed_config"]
    hcm.pop("access_log")
    hcm["forward_client_cert_details"] = "APPEND_FORWARD"
    hcm["always_set_request_id_in_response"] = False  # the gateway's id reaches the client
    # The certificate only: Envoy writes URI and DNS values unquoted, and
    # modelgate refuses a header that carries them (a SAN could forge an
    # element with them).
    hcm["set_current_client_cert_details"] = {"cert": True}
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.router"]
    hcm["route_config"] = {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "gateway"}}]}]}
    listeners.append(front)
    cluster = json.loads(json.dumps(config["static_resources"]["clusters"][0]))
    cluster["name"] = cluster["load_assignment"]["cluster_name"] = "gateway"
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = \
        gateway["address"]["socket_address"]["port_value"]
    cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": "localhost",
        "common_tls_context": {
            "tls_certificates": [{"certificate_chain": {"filename": str(FIXTURES / "server.pem")},
                                  "private_key": {"filename": str(FIXTURES / "server.key")}}],
            "validation_context": {"trusted_ca": {"filename": str(FIXTURES / "ca.pem")}}}}}
    config["static_resources"]["clusters"].append(cluster)


XFCC_POLICY = {"identity": {"x509_svid": {"source": "xfcc", "trusted_hop": FRONT_PROXY_ID}, "require": "x509"}}


def test_the_certificate_a_trusted_proxy_forwards_identifies_the_caller():
    ports = {}

    def mutate(config, _):
        ports["front"] = __import__("harness").free_port()
        behind_a_front_proxy(config, ports)

    with running_gateway(XFCC_POLICY, mutate=mutate) as gw:
        front = gw.url.rsplit(":", 1)[0].replace("http://127.0.0.1", "https://localhost") + f":{ports['front']}"
        gw.reset()
        ok = requests.post(f"{front}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}, timeout=10,
                           verify=str(FIXTURES / "ca.pem"), cert=(str(FIXTURES / "bot.pem"), str(FIXTURES / "bot.key")))
        assert ok.status_code == 200, ok.text
        record = gw.audit_for(ok.headers["x-request-id"])
        assert (record["workload"]["spiffe_id"], record["workload"]["svid"]) == (BOT, "x509")
        [seen] = gw.requests_seen()
        assert not [k for k, _ in seen["headers"] if k == "x-forwarded-client-cert"], "the workload's certificate stays here"
        bad = requests.post(f"{front}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}, timeout=10,
                            verify=str(FIXTURES / "ca.pem"), cert=(str(FIXTURES / "two_uri_sans.pem"), str(FIXTURES / "two_uri_sans.key")))
        assert (bad.status_code, bad.headers["x-modelgate-reason"]) == (401, "invalid_svid")
        # Sent straight to the gateway by a workload: its peer is no trusted hop.
        direct = gw.url.replace("http://127.0.0.1", "https://localhost")
        bot_tls = {"verify": str(FIXTURES / "ca.pem"), "cert": (str(FIXTURES / "bot.pem"), str(FIXTURES / "bot.key"))}
        forged = requests.post(f"{direct}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}, timeout=10,
                               headers={"x-forwarded-client-cert": "By=spiffe://example.org/evil;URI=" + BOT}, **bot_tls)
        assert (forged.status_code, forged.headers["x-modelgate-reason"]) == (401, "invalid_svid")
        assert gw.audit_for(forged.headers["x-request-id"])["detail"] == "xfcc_untrusted_peer"
        # No certificate forwarded at all: missing identity.
        none = requests.post(f"{direct}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}, timeout=10,
                             **bot_tls)
        assert (none.status_code, none.headers["x-modelgate-reason"]) == (401, "missing_identity")
