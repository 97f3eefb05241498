"""Second attack round on modelgate's MCP support (docs/mcp.md,
docs/threat-model.md §9), end to end through the real Envoy, the official
SDK's server and — where the attack needs a server answer the SDK does not
give — a minimal hand-written MCP server.

Each test is one attack that, at the time of writing, gets through: it
asserts what the gateway ought to do, so each FAILS until the hole is
closed. Where the attack is a request the gateway must refuse, the test
asserts the refusal, that nothing reached the MCP server, and one audit
record. Where the attack rides on requests the gateway rightly allows
(the harm is in the answer), it asserts the answer and the one record.
"""

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import svid
from harness import free_port
from mcp_harness import (ACCEPT, HANDSHAKE, MCP_PROVIDERS, MODERN, OPS, SERVERS, TRIAGE, Raw, answer,
                         mcp_policy_patch, refused, running_mcp_gateway)

INVALID, NOT_ALLOWED, REFUSED = -32600, -32601, -32001
# What docs/mcp.md's triage agent may not see in a tools listing.
HIDDEN_TOOL = b"delete_repo"


# --- a hand-written MCP server: answers the SDK's server never gives ---------------------------

FAKE_TOOLS = [{"name": n, "inputSchema": {"type": "object"}} for n in ("search_issues", "get_issue", "delete_repo")]


class FakeMcp(BaseHTTPRequestHandler):
    """An MCP server (Streamable HTTP, JSON answers) whose `tools/list`
    answer is labelled `text/event-stream` while its body is one plain JSON
    message — as a server built on a framework that sets the stream type
    for every answer (or a misconfigured proxy in front of it) sends."""

    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        FakeMcp.seen.append({"method": "POST", "path": self.path, "body": body.decode("utf-8", "replace")})
        message = json.loads(body)
        content_type = "application/json"
        if message.get("method") == "initialize":
            out = {"jsonrpc": "2.0", "id": message["id"],
                   "result": {"protocolVersion": HANDSHAKE, "capabilities": {"tools": {}},
                              "serverInfo": {"name": "fake", "version": "1"}}}
        elif message.get("method") == "tools/list":
            out = {"jsonrpc": "2.0", "id": message["id"], "result": {"tools": FAKE_TOOLS}}
            content_type = "text/event-stream"
        else:
            out = {"jsonrpc": "2.0", "id": message.get("id"), "result": {}}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", content_type)
        if message.get("method") == "initialize":
            self.send_header("mcp-session-id", "fake-session-1")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def with_fake_provider(patch: dict, port: int):
    """`patch` plus one more MCP provider, `githubx` at /githubx/ (the fake
    server), named by every rule that names the stand-in servers; and the
    Envoy route to it."""
    provider = {**MCP_PROVIDERS[0], "name": "githubx", "match": {"path_prefix": "/githubx/"}}
    patch = {**patch, "providers": patch["providers"] + [provider],
             "rules": [{**r, "providers": r["providers"] + ["githubx"]} if set(r.get("providers", [])) == set(SERVERS)
                       else r for r in patch["rules"]]}

    def route(config, _ports):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        config["static_resources"]["clusters"].append({
            "name": "mcp_githubx", "type": "STATIC", "connect_timeout": "2s",
            "load_assignment": {"cluster_name": "mcp_githubx", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}})
        hcm["route_config"]["virtual_hosts"][0]["routes"].insert(0, {
            "match": {"prefix": "/githubx/"}, "route": {"cluster": "mcp_githubx", "prefix_rewrite": "/"}})

    return patch, route


def triage_may_listen() -> dict:
    """The worked example's policy, with `subscriptions/listen` (the
    2026-07-28 notification stream) added to the triage agent's `mcp`."""
    patch = copy.deepcopy(mcp_policy_patch())
    for rule in patch["rules"]:
        if rule.get("id") == "triage-tools":
            rule["mcp"] = rule["mcp"] + ["subscriptions/listen"]
    return patch


@pytest.fixture(scope="module")
def fake_server():
    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), FakeMcp)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def gw(fake_server):
    patch, route = with_fake_provider(triage_may_listen(), fake_server)
    with running_mcp_gateway(patch, mutate=route) as g:
        yield g


@pytest.fixture(scope="module")
def audit_gw():
    with running_mcp_gateway({"mode": "audit"}) as g:
        yield g


@pytest.fixture(autouse=True)
def fresh(request):
    for name in ("gw", "audit_gw"):
        if name in request.fixturenames:
            for server in request.getfixturevalue(name).servers.values():
                server.reset()
    FakeMcp.seen.clear()


@pytest.fixture(params=["sse", "json"])
def server(request, gw):
    return getattr(gw, request.param)


# --- the prompt guard: a number the server reads as the card number -------------------------------


@pytest.mark.parametrize("number", ["4111111111111111e0", "4.111111111111111e15", "5555555555554444E0",
                                    "41111111111111110e-1"])
def test_a_card_number_written_with_an_exponent_is_read_by_the_guard(gw, server, number):
    """The first round taught the guard to read JSON numbers, but it reads
    their digits as text: `4111111111111111` is blocked, yet the same value
    written `4111111111111111e0`, `4.111111111111111e15` or
    `41111111111111110e-1` is not (an `e`, a word character, ends the digit
    run with no word boundary; a `.` splits it). All are the JSON number
    4111111111111111: the server reads that value — the SDK's `get_issue`
    takes it as its integer `number` and echoes `4111111111111111` back —
    so the card number leaves. Breaks "check what the server will read"
    (docs/mcp.md: the guard reads "every number")."""
    raw = Raw(server, TRIAGE)
    raw.initialize()
    body = ('{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_issue",'
            '"arguments":{"repo":"acme/api","number":%s}}}' % number)
    r = raw.post(raw=body)
    refused(gw, server, r, 403, "prompt_blocked", detail="card_number", code=REFUSED)


# --- listings: answers that reach the client uncut ------------------------------------------------


def test_a_listing_answer_delivered_to_another_post_by_a_repeated_jsonrpc_id_is_still_cut(gw, server):
    """The gateway holds and cuts the answer of a POST whose message is
    `tools/list`, and passes every other POST's answer unread. But the SDK's
    server does not answer a POST: it routes each JSON-RPC response to the
    stream registered under `str(id)` — an id the client chooses. The triage
    agent sends `tools/list` with id N and, a moment later, a burst of
    `ping`s with the same id N, each allowed and each passed unread: the
    last `ping` registered before the listing is answered takes over id N's
    stream, and the full, uncut tools list — `delete_repo` and all — is the
    answer to that `ping` (the `tools/list` POST itself hangs). Within a few
    bursts it lands, on SSE and JSON servers alike. The gateway decides a
    POST's answer by the POST's method, the server by the message's id:
    breaks "decide in the provider's namespace" and §9's "a listing never
    passes unfiltered". (The requests themselves are allowed and rightly
    reach the server; the attack is in what comes back.)"""
    raw = Raw(server, TRIAGE)
    raw.initialize()
    leaked = []
    for round_ in range(4):  # the deterministic proof is the next test
        rid = 7000 + round_
        answers = []
        lock = threading.Lock()

        def send(method, delay):
            time.sleep(delay)
            try:
                r = requests.post(server.endpoint, data=json.dumps({"jsonrpc": "2.0", "id": rid, "method": method}),
                                  headers=raw.headers(), timeout=3)
            except requests.RequestException:
                return  # the POST whose stream was taken over never gets its answer
            with lock:
                answers.append((method, r))

        threads = [threading.Thread(target=send, args=("tools/list", 0))]
        threads += [threading.Thread(target=send, args=("ping", 0.0005 * i)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        leaked = [r for method, r in answers if HIDDEN_TOOL in r.content]
        if leaked:
            break
    for r in leaked:
        gw.audit_for(r.headers["x-request-id"])  # one record each...
    assert not leaked, ("the uncut tools list reached the triage agent as the answer to another message: "
                        f"{leaked[0].text[:300]!r}")


def test_a_listing_reaches_the_server_under_the_gateways_id_and_returns_under_the_clients(gw, server):
    """The fix for the race above, checked without a race: the server never
    sees the client's id on a listing (so no other request can reuse it to
    take the answer), and the client gets its own id back."""
    raw = Raw(server, TRIAGE)
    raw.initialize()
    r = raw.post({"jsonrpc": "2.0", "id": 4242, "method": "tools/list"})
    assert r.status_code == 200
    got = answer(r)
    assert got["id"] == 4242 and HIDDEN_TOOL.decode() not in json.dumps(got)
    (seen,) = [x for x in server.requests_seen() if x["method"] == "POST" and b"tools/list" in x["body"].encode()]
    sent_id = json.loads(seen["body"])["id"]
    assert isinstance(sent_id, str) and sent_id.startswith("modelgate-") and "4242" not in sent_id
    gw.audit_for(r.headers["x-request-id"])


def test_a_listing_labelled_an_event_stream_but_holding_plain_json_is_still_cut(gw):
    """The gateway picks how to cut a listing by the answer's
    `content-type`: `text/event-stream` is cut event by event, and text with
    no `data:` line is passed as it came ("a comment, a retry or an id
    alone"). A server that labels its JSON answer `text/event-stream` (the
    hand-written server here; frameworks that set the stream type on every
    MCP answer) has its whole, uncut `tools/list` passed to the triage
    agent: `delete_repo` included. docs/mcp.md: "An answer that cannot be
    read is replaced by a JSON-RPC error: a listing is never passed
    unfiltered." (The request is allowed and rightly reaches the server.)"""
    url = f"{gw.url}/githubx/mcp"
    headers = {"authorization": f"Bearer {svid.mint(TRIAGE)}", "accept": ACCEPT, "content-type": "application/json"}
    init = requests.post(url, headers=headers, timeout=10, data=json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
    assert init.status_code == 200, init.text[:300]
    headers.update({"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": HANDSHAKE})
    r = requests.post(url, headers=headers, timeout=10, data=json.dumps({"jsonrpc": "2.0", "id": 2,
                                                                         "method": "tools/list"}))
    record = gw.audit_for(r.headers["x-request-id"])
    assert record["mcp"]["method"] == "tools/list", record
    assert [m for m in FakeMcp.seen if '"tools/list"' in m["body"]], "the listing request never reached the server"
    assert HIDDEN_TOOL not in r.content, f"the uncut tools list reached the triage agent: {r.text[:300]!r}"


# --- names the server acts on that are not decided ------------------------------------------------


def test_subscriptions_listen_to_a_resource_the_workload_may_not_read_is_refused(gw, server):
    """`resources/subscribe` is decided on its URI (a `resources` pattern),
    but the 2026-07-28 revision subscribes through `subscriptions/listen`,
    whose `params.notifications.resourceSubscriptions` lists the URIs to
    watch — and the gateway decides only the method. The triage agent,
    allowed `subscriptions/listen` and `repo://acme/*`, subscribes to
    `repo://other/secret`: the SDK's server accepts it (200, the stream
    opens) and will tell it each time the secret repository changes. Breaks
    "every name that selects what the server runs is decided"."""
    raw = Raw(server, TRIAGE)
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "attacks", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    message = {"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
               "params": {"_meta": meta, "notifications": {"resourceSubscriptions": ["repo://other/secret"]}}}
    headers = raw.headers({"mcp-protocol-version": MODERN, "mcp-method": "subscriptions/listen"}, session=False)
    with requests.post(server.endpoint, data=json.dumps(message), headers=headers, stream=True,
                       timeout=(5, 3)) as r:
        status = (r.status_code, r.headers.get("x-modelgate-reason"))
        request_id = r.headers.get("x-request-id")
        body = r.raw.read(4096, decode_content=True) if r.status_code != 200 else b""
    assert status == (403, "resource_not_allowed"), (status, body[:300])
    error = json.loads(body)
    assert error["error"]["data"]["reason"] == "resource_not_allowed" and error["id"] == 9, error
    time.sleep(0.15)
    assert server.requests_seen() == [], "a subscription to a resource no rule allows reached the MCP server"
    record = gw.audit_for(request_id)
    assert (record["decision"], record["reason"]) == ("deny", "resource_not_allowed"), record


# --- audit mode: a session checked only on the endpoint -------------------------------------------


@pytest.mark.parametrize("path", ["MCP", "mcp/"])
@pytest.mark.parametrize("which", ["sse", "json"])
def test_in_audit_mode_another_workloads_session_never_reaches_the_server_off_the_endpoint(audit_gw, which, path):
    """docs/threat-model.md §9: another workload's, a forged or a bare
    session id "is refused in every mode, and the server's own id only ever
    reaches the server". The session is checked in `message::admit`, which
    runs only once the path classified as the MCP endpoint. In audit mode a
    request to an MCP provider on any other path (`/github/MCP`,
    `/github/mcp/`, `/github/sse`…) is a would-deny and goes on — with the
    gateway's credential swapped in and the caller's `mcp-session-id`
    unread. The wrapped id a session is handed as holds the server's id in
    clear (`<id>.mg1.<mac>`): the ops agent strips the MAC off the triage
    agent's session and POSTs `tools/call` on `/github/MCP` with the bare
    id; it reaches the server in the triage agent's session under the
    gateway's key. The SDK's Starlette routes are exact and answer 404, but
    a server whose router folds case or ignores a trailing slash (Express's
    defaults, which the TypeScript SDK's examples use) runs the call in the
    other workload's session. Breaks "chain of custody" and §9's session
    claim."""
    gw = audit_gw
    server = getattr(gw, which)
    triage = Raw(server, TRIAGE)
    triage.initialize()
    bare = triage.session.split(".mg1.")[0]
    ops = Raw(server, OPS)
    r = ops.post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                  "params": {"name": "echo", "arguments": {"text": "in someone else's session"}}},
                 path=path, headers={"mcp-session-id": bare, "mcp-protocol-version": HANDSHAKE})
    time.sleep(0.15)
    seen = server.requests_seen()
    assert [s for s in seen if ["mcp-session-id", bare] in s["headers"]] == [], \
        f"another workload's bare session reached the MCP server: {[(s['method'], s['path']) for s in seen]}"
    assert seen == [], "a request on a path that is not the MCP endpoint reached the MCP server with a session"
    assert (r.status_code, r.headers.get("x-modelgate-reason")) == (404, "session_not_found"), \
        (r.status_code, r.headers.get("x-modelgate-reason"), r.text[:300])
    record = gw.audit_for(r.headers["x-request-id"])
    assert record["reason"] == "session_not_found", record
