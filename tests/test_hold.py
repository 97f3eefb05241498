"""Nothing leaves before the decision: modelgate holds each request —
headers, body, trailers — and only an allowed one reaches the provider.
Envoy runs with `allow_on_headers_stop_iteration: true` and no buffer
filter; the stand-in provider records a request the moment its headers
arrive, so "nothing upstream" means not even a request head.
"""

import http.client
import json
import time

import pytest
import requests

import h2client
import svid
from conftest import running_gateway
from test_e2e import BATCH, BOT, HI, RESEARCH, header_values, oa

CHAT = "/openai/v1/chat/completions"


def auth(token=None):
    return {"authorization": f"Bearer {token or svid.mint(BOT)}", "content-type": "application/json"}


def raw(gateway, method, path, headers, body_parts, trailers=()):
    """An HTTP/1.1 request written by hand: chunked when `body_parts` has
    more than one part or trailers are given, else with content-length."""
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    conn.putrequest(method, path, skip_accept_encoding=True)
    chunked = len(body_parts) > 1 or bool(trailers)
    for k, v in headers.items():
        conn.putheader(k, v)
    if chunked:
        conn.putheader("transfer-encoding", "chunked")
    else:
        conn.putheader("content-length", str(sum(len(p) for p in body_parts)))
    conn.endheaders()
    if chunked:
        for part in body_parts:
            conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        conn.send(b"0\r\n" + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in trailers) + b"\r\n")
    else:
        conn.send(b"".join(body_parts))
    response = conn.getresponse()
    response.data = response.read()
    return response


def nothing_upstream(gateway):
    time.sleep(0.2)
    assert gateway.requests_seen() == [], "a refused request reached the provider"


def one_record(gateway, request_id):
    return gateway.audit_for(request_id)


# --- every refusal decided on the body leaves nothing upstream ---------------

BIG = 1024 * 1024 + 1


@pytest.mark.parametrize("name,token,body,status,reason", [
    ("model_not_allowed", BOT, {"model": "gpt-4o", "messages": HI}, 403, "model_not_allowed"),
    ("deny_rule", RESEARCH, {"model": "gpt-3.5-turbo", "messages": HI}, 403, "model_not_allowed"),
    ("duplicate_model", BOT, b'{"model":"gpt-4o-mini","model":"gpt-4o"}', 400, "ambiguous_model"),
    ("escaped_model", BOT, b'{"model":"gpt-4o-mini","\\u006dodel":"gpt-4o"}', 400, "ambiguous_model"),
    ("nested_duplicate", BOT, b'{"model":"gpt-4o-mini","messages":[{"role":"user","role":"system","content":"x"}]}',
     400, "invalid_body"),
    ("not_json", BOT, b"model=gpt-4o", 400, "invalid_body"),
    ("stream_not_allowed", BATCH, {"model": "gpt-4o-mini", "messages": HI, "stream": True}, 403, "stream_not_allowed"),
    ("cap_exceeded", BOT, {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 4096}, 403, "max_tokens_exceeded"),
])
def test_a_body_refusal_sends_nothing_upstream(gateway, name, token, body, status, reason):
    gateway.reset()
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = requests.post(f"{gateway.url}{CHAT}", data=data, headers=auth(svid.mint(token)), timeout=10)
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (status, reason)
    nothing_upstream(gateway)
    record = one_record(gateway, r.headers["x-request-id"])
    assert (record["decision"], record["reason"], record["upstream"]) == ("deny", reason, None)


def test_a_body_over_the_limit_is_refused_declared_or_chunked(gateway):
    gateway.reset()
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * BIG}]}).encode()
    declared = raw(gateway, "POST", CHAT, auth(), [body])
    chunked = raw(gateway, "POST", CHAT, auth(), [body[i:i + 65536] for i in range(0, len(body), 65536)])
    for r in (declared, chunked):
        assert (r.status, r.getheader("x-modelgate-reason")) == (413, "body_too_large")
        assert one_record(gateway, r.getheader("x-request-id"))["reason"] == "body_too_large"
    nothing_upstream(gateway)


def test_a_workload_no_rule_names_is_refused_on_its_headers(gateway):
    gateway.reset()
    token = svid.mint("spiffe://example.org/ns/nobody/sa/x")
    r = requests.post(f"{gateway.url}{CHAT}", json={"model": "gpt-4o-mini", "messages": HI},
                      headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (403, "model_not_allowed")
    assert one_record(gateway, r.headers["x-request-id"])["detail"] == "no_matching_rule"
    nothing_upstream(gateway)


# --- what is allowed arrives exactly as checked, plus the cap ------------------


def test_an_allowed_chunked_body_arrives_whole_with_the_cap_and_its_length(gateway):
    gateway.reset()
    body = json.dumps({"model": "gpt-4o-mini", "messages": HI}).encode()
    r = raw(gateway, "POST", CHAT, auth(), [body[:7], body[7:20], body[20:]])
    assert r.status == 200, r.data
    [seen] = gateway.requests_seen()
    assert seen["body"] == '{"max_completion_tokens":1024,' + body.decode()[1:]
    assert header_values(seen, "content-length") == [str(len(seen["body"]))]
    assert header_values(seen, "transfer-encoding") == []


def test_a_one_mebibyte_body_is_decided_and_forwarded(gateway):
    gateway.reset()
    content = "y" * (1024 * 1024 - 200)
    r = requests.post(f"{gateway.url}{CHAT}", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
                      headers=auth(), timeout=20)
    assert r.status_code == 200
    [seen] = gateway.requests_seen()
    assert json.loads(seen["body"])["messages"][0]["content"] == content


def test_the_provider_receives_the_bytes_that_were_checked(gateway):
    """Big integers, key order, escapes and non-ASCII text arrive untouched:
    only the cap is spliced in (the old path re-serialized the body)."""
    gateway.reset()
    body = ('{"zeta": 12345678901234567890123, "model":"gpt-4o-mini","max_tokens" :null,'
            '"messages":[{"content":"\\u00e9t\u00e9 \\"q\\" \\ud83d\\ude00 \u65e5\u672c","role":"user"}],"alpha":1.50E+3}')
    r = requests.post(f"{gateway.url}{CHAT}", data=body.encode(), headers=auth(), timeout=10)
    assert r.status_code == 200
    [seen] = gateway.requests_seen()
    assert seen["body"] == body.replace(":null", ":1024")


# --- HTTP/2, and bodies that end in trailers ----------------------------------


def h2(gateway, token, body, trailers=None, path=CHAT):
    return h2client.request(gateway.url, path, [("authorization", f"Bearer {token}"), ("content-type", "application/json")],
                            [json.dumps(body).encode()], trailers)


def test_http2_requests_are_decided_like_http1(gateway):
    gateway.reset()
    ok = h2(gateway, svid.mint(BOT), {"model": "gpt-4o-mini", "messages": HI})
    denied = h2(gateway, svid.mint(BOT), {"model": "gpt-4o", "messages": HI})
    assert (ok.status, denied.status) == (200, 403)
    assert [json.loads(r["body"])["model"] for r in gateway.requests_seen()] == ["gpt-4o-mini"]


def test_a_body_ending_in_trailers_is_decided_before_anything_leaves(gateway):
    """The bypass this closes: over HTTP/2 a body followed by trailers never
    had end-of-stream in the body callback, and went on undecided."""
    gateway.reset()
    r = h2(gateway, svid.mint(BOT), {"model": "o1", "messages": HI}, trailers=[("x-checksum", "1")])
    assert r.status == 403 and r.headers["x-modelgate-reason"] == "model_not_allowed"
    nothing_upstream(gateway)
    record = one_record(gateway, r.headers["x-request-id"])
    assert (record["decision"], record["reason"], record["model"]) == ("deny", "model_not_allowed", "o1")


def test_credentials_in_trailers_never_reach_the_provider(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    r = h2(gateway, token, {"model": "gpt-4o-mini", "messages": HI},
           trailers=[("authorization", "Bearer sk-caller-trailer"), ("x-api-key", "sk-caller-trailer-2")])
    assert r.status == 200
    [seen] = gateway.requests_seen()
    assert "sk-caller-trailer" not in json.dumps(seen) and seen["trailers"] == []
    assert header_values(seen, "authorization") == [f"Bearer {gateway.openai_key}"]
    record = one_record(gateway, r.headers["x-request-id"])
    assert (record["decision"], record["model"]) == ("allow", "gpt-4o-mini")


def test_http1_chunked_trailers_are_decided_and_dropped(gateway):
    gateway.reset()
    denied = raw(gateway, "POST", CHAT, auth(), [b'{"model":', b'"gpt-4o"}'], trailers=[("authorization", "Bearer caller-secret")])
    assert denied.status == 403
    allowed = raw(gateway, "POST", CHAT, auth(), [b'{"model":', b'"gpt-4o-mini"}'], trailers=[("x-api-key", "caller-secret-2")])
    assert allowed.status == 200
    [seen] = gateway.requests_seen()
    assert "caller-secret" not in json.dumps(seen) and seen["trailers"] == []


# --- audit mode never hands out the gateway's key ------------------------------


def test_audit_mode_refuses_callers_it_cannot_identify(audit_gateway):
    gw = audit_gateway
    gw.reset()
    for headers in ({"authorization": "Bearer not-a-jwt"}, {}):
        r = requests.post(f"{gw.openai_base}/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                          headers=headers, timeout=10)
        assert r.status_code == 401
        record = gw.audit_for(r.headers["x-request-id"])
        assert (record["decision"], record["mode"], record["would_deny"]) == ("deny", "audit", False)
    nothing_upstream(gw)


# --- a deployment that does not hold fails closed, fast and loudly ------------


def without_the_flag(config, _ports):
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")
    del wasm["typed_config"]["config"]["allow_on_headers_stop_iteration"]


def test_an_envoy_that_does_not_hold_fails_closed_within_seconds():
    with running_gateway(mutate=without_the_flag) as gw:
        started = time.monotonic()
        r = requests.post(f"{gw.url}{CHAT}", json={"model": "gpt-4o-mini", "messages": HI}, headers=auth(), timeout=30)
        took = time.monotonic() - started
        assert (r.status_code, r.headers["x-modelgate-reason"]) == (503, "not_configured")
        assert "allow_on_headers_stop_iteration" in r.json()["error"]["message"]
        assert took < 10, f"took {took:.1f}s"
        record = gw.audit_for(r.headers["x-request-id"])
        assert (record["decision"], record["reason"], record["detail"]) == ("deny", "not_configured", "hold_unsupported")
        nothing_upstream(gw)
        log = gw.envoy_log.read_text()
        assert "Set allow_on_headers_stop_iteration: true" in log
        # A request without a body needs no hold, and still works.
        listing = requests.get(f"{gw.url}/openai/v1/models", headers=auth(), timeout=10)
        assert listing.status_code == 200


# --- the provider is chosen the way Envoy routes ------------------------------


def one_virtual_host_per_provider(config, ports):
    """api.openai.com and api.anthropic.com each route to their own stand-in;
    anything else reaches a third one."""
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    route = lambda cluster: [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]  # noqa: E731
    hcm["route_config"]["virtual_hosts"] = [
        {"name": "openai", "domains": ["api.openai.com"], "routes": route("openai")},
        {"name": "anthropic", "domains": ["api.anthropic.com"], "routes": route("anthropic")},
        {"name": "other", "domains": ["*"], "routes": route("other")},
    ]
    template = config["static_resources"]["clusters"][0]
    config["static_resources"]["clusters"] = []
    for name, port in ports.items():
        cluster = json.loads(json.dumps(template))
        cluster["name"] = cluster["load_assignment"]["cluster_name"] = name
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = port
        config["static_resources"]["clusters"].append(cluster)


BY_AUTHORITY = {"providers": [
    {"name": "openai", "api": "openai", "match": {"authorities": ["api.openai.com"]},
     "credential": {"type": "api_key", "env": "OPENAI_API_KEY"}},
    {"name": "anthropic", "api": "anthropic", "match": {"authorities": ["api.anthropic.com"]},
     "credential": {"type": "api_key", "env": "ANTHROPIC_API_KEY"}},
], "rules": [
    {"id": "support-bot", "effect": "allow", "workloads": [BOT], "providers": ["openai", "anthropic"],
     "models": ["gpt-4o-mini", "claude-haiku-4-5*"]},
]}


def test_a_provider_is_chosen_only_for_the_authority_envoy_routes_to_it():
    with running_gateway(BY_AUTHORITY, mutate=one_virtual_host_per_provider,
                         upstreams=("openai", "anthropic", "other")) as gw:
        body = {"model": "gpt-4o-mini", "messages": HI}
        ok = requests.post(f"{gw.url}/v1/chat/completions", json=body, headers={**auth(), "host": "api.openai.com"}, timeout=10)
        assert ok.status_code == 200
        assert header_values(gw.upstream("openai").requests_seen()[0], "authorization") == [f"Bearer {gw.openai_key}"]
        # Spellings Envoy routes to the catch-all host: never the provider.
        for host in ("api.openai.com:443", "api.openai.com.", "API.OPENAI.COM.", "api.openai.com.evil.example"):
            r = requests.post(f"{gw.url}/v1/chat/completions", json=body, headers={**auth(), "host": host}, timeout=10)
            assert (r.status_code, r.headers.get("x-modelgate-reason")) == (403, "no_provider"), host
        # Envoy matches hosts case-insensitively, and so does modelgate.
        r = requests.post(f"{gw.url}/v1/chat/completions", json=body, headers={**auth(), "host": "API.OpenAI.com"}, timeout=10)
        assert r.status_code == 200
        assert gw.upstream("other").requests_seen() == []
        assert gw.openai_key not in json.dumps(gw.upstream("anthropic").requests_seen())


# --- worst-case bodies at the size limit ---------------------------------------


def test_worst_case_bodies_are_decided_quickly(gateway):
    """Each near the 1 MiB limit, built to be slow for a naive checker."""
    many = {"model": "gpt-4o-mini", "messages": HI, "metadata_blob": [{f"k{i}": i} for i in range(50_000)]}
    flat = '{"model":"gpt-4o-mini","messages":[],' + ",".join(f'"m{i}":{i}' for i in range(60_000)) + "}"
    escaped = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\u00e9\n" * 120_000}]}, ensure_ascii=True)
    deep = '{"model":"gpt-4o-mini","x":' + "[" * 100_000 + "]" * 100_000 + "}"
    cases = [(json.dumps(many), 200, None), (flat, 200, None), (escaped, 200, None), (deep, 400, "too_deep")]
    for body, status, detail in cases:
        assert len(body) < 1024 * 1024
        started = time.monotonic()
        r = requests.post(f"{gateway.url}{CHAT}", data=body.encode(), headers=auth(svid.mint(RESEARCH)), timeout=30)
        assert r.status_code == status, r.text[:200]
        assert time.monotonic() - started < 5
        if detail:
            assert gateway.audit_for(r.headers["x-request-id"])["detail"] == detail
