"""Attacks on modelgate's MCP support (docs/mcp.md, docs/threat-model.md §9),
end to end through the real Envoy and the official SDK's server.

Each test is one attack that, at the time of writing, gets through: it
asserts what the gateway ought to do (refuse, with its reason; nothing at the
MCP server; one audit record), so each FAILS until the hole is closed.
"""

import re
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from harness import ROOT, free_port, wait_until
from mcp_harness import (MCP_PROVIDERS, MODERN, SERVERS, TRIAGE, McpServer, Raw, answer, mcp_policy_patch, refused,
                         running_mcp_gateway)

INVALID, NOT_ALLOWED, REFUSED = -32600, -32601, -32001
SEARCH = {"name": "search_issues", "arguments": {"repo": "acme/api", "query": "flaky"}}


@pytest.fixture(scope="module")
def gw():
    with running_mcp_gateway() as g:
        yield g


@pytest.fixture(autouse=True)
def fresh(request):
    if "gw" in request.fixturenames:
        for server in request.getfixturevalue("gw").servers.values():
            server.reset()


@pytest.fixture(params=["sse", "json"])
def server(request, gw):
    return getattr(gw, request.param)


def modern(raw: Raw, method: str, params: dict, headers: dict) -> requests.Response:
    """A 2026-07-28 (stateless) request with its routing headers."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "attacks", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    return raw.request(method, {**params, "_meta": meta}, session=False,
                       headers={"mcp-protocol-version": MODERN, "mcp-method": method, **headers})


# --- routing headers --------------------------------------------------------------------------


def test_an_mcp_param_header_naming_another_arguments_value_is_refused(gw, server):
    """`Mcp-Param-Repo: other/secret` with a body whose `repo` is the allowed
    `acme/api` and whose `query` is `other/secret`. The gateway only checks
    that the header's value equals SOME argument's value, not the argument
    the header is named after, so it forwards the call: a server, gateway or
    load balancer that routes on `Mcp-Param-Repo` (the 2026-07-28 revision's
    point) reads the repository `other/secret`, which the rule's argument
    constraint (`repo: acme/*`) forbids. Breaks "check every header the
    server may route on" / "decide in the provider's namespace". (The SDK's
    own server happens to re-check and answers 400 — but the message, with
    the forbidden routing value, already reached it.)"""
    raw = Raw(server, TRIAGE)
    r = modern(raw, "tools/call", {"name": "search_issues", "arguments": {"repo": "acme/api", "query": "other/secret"}},
               {"mcp-name": "search_issues", "mcp-param-repo": "other/secret"})
    refused(gw, server, r, 400, "invalid_body", detail="header_mismatch", code=INVALID)


@pytest.mark.parametrize("verb", ["GET", "DELETE"])
def test_routing_headers_on_a_get_or_delete_are_checked_too(gw, server, verb):
    """A session's GET stream and its DELETE carry `Mcp-Method: tools/call`,
    `Mcp-Name: delete_repo`, `Mcp-Param-Repo: other/secret`. Routing headers
    are checked only against a POST's body, so these reach the server
    verbatim: whatever routes on them (a server's dispatcher, a front proxy,
    per-tool rate limits or logging) reads a call of `delete_repo` on
    `other/secret` that no rule allows and no body says. A GET or DELETE has
    no message: any routing header on it disagrees with it."""
    raw = Raw(server, TRIAGE)
    raw.initialize()
    headers = {"mcp-method": "tools/call", "mcp-name": "delete_repo", "mcp-param-repo": "other/secret"}
    if verb == "GET":
        with requests.get(server.endpoint, headers=raw.headers(headers), stream=True, timeout=(5, 2)) as r:
            status = (r.status_code, r.headers.get("x-modelgate-reason"))
            body = r.raw.read(4096, decode_content=True) if r.status_code != 200 else b""
    else:
        r = raw.delete(headers=headers)
        status, body = (r.status_code, r.headers.get("x-modelgate-reason")), r.content
    assert status == (400, "invalid_body"), (status, body[:300])
    time.sleep(0.15)
    assert server.requests_seen() == [], "routing headers no message backs reached the MCP server"
    records = [x for x in gw.audit_records() if x.get("request_id") == r.headers["x-request-id"]]
    assert len(records) == 1 and records[0]["decision"] == "deny", records


# --- names the server runs that are not decided -----------------------------------------------


@pytest.mark.parametrize("ref,reason", [
    ({"type": "ref/prompt", "name": "admin"}, "prompt_not_allowed"),
    ({"type": "ref/resource", "uri": "repo://other/{name}"}, "resource_not_allowed"),
])
def test_completion_on_a_prompt_or_resource_the_workload_may_not_use_is_refused(gw, server, ref, reason):
    """`completion/complete` names what it completes for in `params.ref`: a
    prompt (`ref/prompt`, `name`) or a resource template (`ref/resource`,
    `uri`), and the server runs THAT prompt's / template's completion handler
    (which typically lists argument values: repository names, users, files of
    the named resource). The gateway decides the method alone (`mcp:
    [completion/complete]`, as docs/mcp.md's worked example grants), so the
    triage agent reaches the completion of the `admin` prompt and of
    `repo://other/…`, neither of which its `prompts`/`resources` allow.
    Breaks "every name that selects what the server runs is decided"."""
    raw = Raw(server, TRIAGE)
    raw.initialize()
    r = raw.request("completion/complete", {"ref": ref, "argument": {"name": "repo", "value": ""}})
    refused(gw, server, r, 403, reason, code=REFUSED)


@pytest.mark.parametrize("uri", ["repo://acme/..", "repo://acme/%2e%2e", "repo://acme/..%2fother%2fsecret",
                                 "repo://acme/api\\..\\..\\other"])
def test_a_resource_uri_a_server_could_read_as_another_path_is_refused(gw, server, uri):
    """`repo://acme/*` is matched against the raw URI. A tool argument that
    holds a `..` segment, a `%` or a `\\` is never matched ("a server could
    read it as another path"), but a resource URI is not held to the same:
    `repo://acme/..`, `repo://acme/%2e%2e`, `repo://acme/..%2fother%2fsecret`
    match `repo://acme/*` and are forwarded. A server whose resource template
    or handler percent-decodes or resolves dot segments (pydantic's AnyUrl
    does both, as the SDK's own resource_manager warns) reads a resource
    outside `acme/`. Breaks "decide in the provider's namespace"."""
    raw = Raw(server, TRIAGE)
    raw.initialize()
    r = raw.request("resources/read", {"uri": uri})
    refused(gw, server, r, 403, "resource_not_allowed", code=REFUSED)


# --- the prompt guard -------------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [
    {"repo": "acme/api", "number": 4111111111111111},          # a Visa test number, Luhn-valid
    {"repo": "acme/api", "number": 5555555555554444},
])
def test_a_card_number_sent_as_a_json_number_is_read_by_the_guard(gw, server, arguments):
    """The guard reads only JSON strings: the same card number the guard
    blocks as `"4111111111111111"` passes as the JSON number
    4111111111111111 in `get_issue`'s integer `number` argument — and the
    tool receives (and here echoes) it. Tool arguments are typed: numbers
    are exactly where an exfiltrated card number goes. Breaks "check what
    the server will read: every field"."""
    raw = Raw(server, TRIAGE)
    raw.initialize()
    r = raw.call("get_issue", arguments)
    refused(gw, server, r, 403, "prompt_blocked", detail="card_number", code=REFUSED)


# --- a listing replayed unfiltered on the session's GET stream --------------------------------

RESUMABLE_SERVER = textwrap.dedent('''
    """The stand-in server of tests/mcp_server.py with resumability on: an
    in-memory event store (SSE event ids, Last-Event-ID replay), as the
    SDK documents for resumable Streamable HTTP servers."""
    import sys, uuid
    sys.path.insert(0, sys.argv[2])
    import uvicorn
    import mcp_server
    from mcp.server.streamable_http import EventMessage, EventStore
    from mcp.server.transport_security import TransportSecuritySettings

    class Store(EventStore):
        def __init__(self):
            self.events = []  # (event_id, stream_id, message)

        async def store_event(self, stream_id, message):
            event_id = uuid.uuid4().hex
            self.events.append((event_id, stream_id, message))
            return event_id

        async def replay_events_after(self, last_event_id, send_callback):
            index = next((i for i, e in enumerate(self.events) if e[0] == last_event_id), None)
            if index is None:
                return None
            stream = self.events[index][1]
            for event_id, stream_id, message in self.events[index + 1:]:
                if stream_id == stream and message is not None:
                    await send_callback(EventMessage(message, event_id))
            return stream

    inner = mcp_server.server.streamable_http_app(
        streamable_http_path="/mcp", event_store=Store(),
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    uvicorn.run(mcp_server.Recorder(inner), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
''')


@pytest.fixture(scope="module")
def resumable(tmp_path_factory):
    """The gateway with one more MCP provider, `githubr` at /githubr/: the
    stand-in server with resumability (an event store) on."""
    script = tmp_path_factory.mktemp("resumable") / "resumable_server.py"
    script.write_text(RESUMABLE_SERVER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(ROOT / "tests")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    direct = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{direct}/__health", timeout=1).ok, 20, "resumable MCP server", proc)
        provider = {**MCP_PROVIDERS[0], "name": "githubr", "match": {"path_prefix": "/githubr/"}}
        rules = [{**r, "providers": r["providers"] + ["githubr"]} if set(r["providers"]) == set(SERVERS) else r
                 for r in mcp_policy_patch()["rules"]]
        patch = {"providers": mcp_policy_patch()["providers"] + [provider], "rules": rules}

        def route(config, _ports):
            hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            config["static_resources"]["clusters"].append({
                "name": "mcp_githubr", "type": "STATIC", "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "mcp_githubr", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}})
            hcm["route_config"]["virtual_hosts"][0]["routes"].insert(0, {
                "match": {"prefix": "/githubr/"},
                "route": {"cluster": "mcp_githubr", "prefix_rewrite": "/", "timeout": "120s"}})

        with running_mcp_gateway(patch, mutate=route) as g:
            server = McpServer(name="githubr", mode="sse", prefix="/githubr/", direct_url=direct,
                               token=g.sse.token, gateway_url=g.url)
            yield g, server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def sse_ids(text: str) -> list:
    return re.findall(r"^id: ?(\S+)", text, flags=re.M)


def test_a_listing_replayed_on_the_sessions_get_stream_is_still_cut(resumable):
    """docs/mcp.md: "a listing is never passed unfiltered". With a resumable
    server (an event store: every SSE event has an id, and `GET` with
    `Last-Event-ID` replays the rest of that stream), the answer to
    `tools/list` is stored by the server and replayed on the session's GET
    stream, which the gateway passes unread. The SDK's streams are keyed by
    the JSON-RPC id, which the client chooses: `ping` with id 77 hands the
    client a priming event id (ping's answer is not held), then `tools/list`
    with the same id 77 lands on the same stream; `GET` with
    `Last-Event-ID: <ping's priming id>` replays the full, uncut tools list —
    `delete_repo` and every tool the triage agent may not see. Breaks the
    listing claim of §9 and "nothing passes undecided"."""
    gw, server = resumable
    raw = Raw(server, TRIAGE)
    raw.initialize()
    ping = raw.post({"jsonrpc": "2.0", "id": 77, "method": "ping"})
    assert ping.status_code == 200, ping.text[:300]
    priming = sse_ids(ping.text)
    assert priming, f"the resumable server sent no event ids: {ping.text[:300]}"
    listing = raw.post({"jsonrpc": "2.0", "id": 77, "method": "tools/list"})
    assert listing.status_code == 200
    cut = [t["name"] for t in answer(listing)["result"]["tools"]]
    assert "delete_repo" not in cut, cut  # the POST's answer is cut...
    server.reset()
    seen = b""
    with requests.get(server.endpoint, headers=raw.headers({"last-event-id": priming[0]}), stream=True,
                      timeout=(5, 3)) as r:
        status = (r.status_code, r.headers.get("x-modelgate-reason"))
        request_id = r.headers.get("x-request-id")
        try:
            for chunk in r.iter_content(chunk_size=None):
                seen += chunk
                if b'"tools"' in seen and b"\n\n" in seen.split(b'"tools"', 1)[1]:
                    break
        except requests.exceptions.ConnectionError:
            pass  # the read timed out: the replay, if any, is in `seen`
    # ...and so must be any replay of it: the uncut list never reaches the client.
    assert b"delete_repo" not in seen, f"the uncut tools list was replayed on the GET stream: {seen[:400]!r}"
    assert status[0] in (200, 400, 403), status
    # The stream's record is written when Envoy logs it, once the client left.
    gw.audit_for(request_id, timeout=10)
