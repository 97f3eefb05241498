"""Agents' tools behind modelgate (docs/mcp.md), through a real Envoy: the
official MCP SDK's client reaching two stand-in MCP servers built with the
official SDK's server (tests/mcp_server.py) — one answering in SSE
streams, one in JSON. The workload's SVID is its bearer token and never
reaches the server, the server's key does; every JSON-RPC message is
decided before it leaves, listings are cut to what the workload may use,
sessions are bound to the workload that opened them, and each message
leaves one chained record. Every refusal proves nothing reached the server.
"""

import json
import re
import time

import anyio
import httpx2
import pytest
import requests
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

import svid
from mcp_harness import (BOT, HANDSHAKE, MODERN, OPS, TRIAGE, Raw, answer, assert_chained, header_values, mcp_session,
                         refused, running_mcp_gateway, sha256)

AKIA = "AKIAIOSFODNN7EXAMPLE"  # an AWS access key id: the demo's prompt guard blocks it
TRIAGE_TOOLS = ["search_issues", "get_issue", "echo"]
INVALID, NOT_ALLOWED, REFUSED = -32600, -32601, -32001


@pytest.fixture(scope="module")
def gw():
    with running_mcp_gateway() as g:
        yield g


@pytest.fixture(autouse=True)
def fresh(gw):
    """Each test starts with both servers' records empty."""
    for server in gw.servers.values():
        server.reset()


@pytest.fixture(params=["sse", "json"])
def server(request, gw):
    """Each server in turn: the one answering in SSE streams, the one in JSON."""
    return getattr(gw, request.param)


def run(fn, *args):
    return anyio.run(fn, *args)


def assert_credentials_swapped(recorded, server, token):
    """The server got its own key and nothing of the caller's SVID."""
    assert header_values(recorded, "authorization") == [f"Bearer {server.token}"]
    assert token not in json.dumps(recorded)


def sdk_refusal(gw, server, conn, err, rpc_method, status, reason):
    """A refusal the SDK raised as an MCPError: the gateway's JSON-RPC
    error, its HTTP answer, nothing at the server, one record."""
    assert err.value.code == (NOT_ALLOWED if reason == "method_not_allowed" else REFUSED), err.value
    assert err.value.data["reason"] == reason, err.value.data
    assert reason in err.value.message
    exchange = conn.last(rpc_method)
    assert (exchange.status, exchange.headers.get("x-modelgate-reason")) == (status, reason)
    time.sleep(0.1)
    assert server.reached() == [], "a refused message reached the MCP server"
    record = gw.audit_for(exchange.request_id)
    assert (record["decision"], record["reason"]) == ("deny", reason)
    return record


# --- the official client, allowed -------------------------------------------------------------


def test_the_official_client_initializes_through_the_gateway(gw, server):
    """docs/mcp.md's client code: ClientSession over streamable_http_client
    with the SVID as bearer token. The session the client holds is the
    server's, wrapped `<id>.mg1.<mac>`; the server sees its own id."""
    async def go():
        async with mcp_session(server, initialize=False) as conn:
            result = await conn.session.initialize()
            assert result.protocol_version == HANDSHAKE and result.server_info.name == "stand-in-github"
            await server.wait_for(lambda seen: len(seen) >= 2, "initialize and notifications/initialized")
            return conn
    conn = run(go)
    init, notified = [r for r in server.requests_seen() if r["method"] == "POST"][:2]
    assert json.loads(init["body"])["method"] == "initialize"
    assert_credentials_swapped(init, server, conn.token)
    wrapped = conn.session_id
    server_id, _, mac = wrapped.partition(".mg1.")
    assert server_id and mac, wrapped
    assert header_values(notified, "mcp-session-id") == [server_id]
    assert_credentials_swapped(notified, server, conn.token)
    record = gw.audit_for(conn.last("initialize").request_id)
    assert (record["decision"], record["reason"], record["rule"]) == ("allow", "ok", "triage-tools")
    assert (record["provider"], record["api"]) == (server.name, "mcp")
    assert record["workload"]["spiffe_id"] == TRIAGE and record["workload"]["svid"] == "jwt"
    assert record["mcp"]["method"] == "initialize" and record["mcp"]["kind"] == "request"
    assert record["mcp"]["session"] is None


def test_an_allowed_tool_call_reaches_the_server_with_its_key_and_never_the_svid(gw, server):
    async def go():
        async with mcp_session(server) as conn:
            result = await conn.session.call_tool("search_issues", {"repo": "acme/api", "query": "flaky"})
            return conn, result
    conn, result = run(go)
    assert not result.is_error and "flaky login test" in result.content[0].text
    # (The SDK's client lists the tools after a call, for the tool's output schema.)
    reached = server.reached()
    assert [json.loads(r["body"])["method"] for r in reached] == ["tools/call", "tools/list"]
    recorded = reached[0]
    assert json.loads(recorded["body"])["params"] == {"name": "search_issues",
                                                      "arguments": {"repo": "acme/api", "query": "flaky"}}
    for recorded in reached:
        assert_credentials_swapped(recorded, server, conn.token)
        assert header_values(recorded, "mcp-session-id") == [conn.session_id.partition(".mg1.")[0]]
    record = gw.audit_for(conn.last("tools/call").request_id)
    assert (record["decision"], record["reason"], record["rule"]) == ("allow", "ok", "triage-tools")
    assert record["credential"]["type"] == "api_key"
    assert record["upstream"]["status"] == 200
    mcp = record["mcp"]
    assert (mcp["method"], mcp["kind"], mcp["tool"], mcp["era"]) == ("tools/call", "request", "search_issues", "handshake")
    assert mcp["session"] == sha256(conn.session_id)
    assert re.fullmatch(r"[0-9a-f]{64}", mcp["arguments_sha256"])


@pytest.mark.parametrize("tool,args,rule", [
    ("delete_repo", {"repo": "acme/api"}, "never-delete"),   # a deny rule
    ("create_issue", {"repo": "acme/api"}, None),            # no rule names it
])
def test_a_denied_tool_raises_mcp_error_and_nothing_reaches_the_server(gw, server, tool, args, rule):
    async def go():
        async with mcp_session(server) as conn:
            with pytest.raises(MCPError) as err:
                await conn.session.call_tool(tool, args)
            return conn, err
    conn, err = run(go)
    record = sdk_refusal(gw, server, conn, err, "tools/call", 403, "tool_not_allowed")
    assert record["rule"] == rule and record["mcp"]["tool"] == tool
    if rule:
        assert f'"{rule}"' in err.value.message


def test_a_deny_rule_beats_an_allow_all(gw, server):
    """OPS may call any tool (`*`) — but never-delete still denies delete_repo."""
    async def go():
        async with mcp_session(server, OPS) as conn:
            assert not (await conn.session.call_tool("echo", {"text": "hi"})).is_error
            server.reset()
            with pytest.raises(MCPError) as err:
                await conn.session.call_tool("delete_repo", {"repo": "acme/api"})
            return conn, err
    conn, err = run(go)
    assert sdk_refusal(gw, server, conn, err, "tools/call", 403, "tool_not_allowed")["rule"] == "never-delete"


# --- listings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workload,tools", [
    (TRIAGE, TRIAGE_TOOLS),
    (OPS, ["search_issues", "get_issue", "echo"]),  # all but what never-delete denies
])
def test_tools_list_is_cut_to_what_the_workload_may_call(gw, server, workload, tools):
    async def go():
        async with mcp_session(server, workload) as conn:
            return conn, await conn.session.list_tools()
    conn, listing = run(go)
    assert [t.name for t in listing.tools] == tools
    exchange = conn.last("tools/list")
    shape = "text/event-stream" if server.mode == "sse" else "application/json"
    assert exchange.headers["content-type"].startswith(shape), "the answer keeps the server's shape"
    record = gw.audit_for(exchange.request_id)
    assert record["decision"] == "allow" and record["mcp"]["method"] == "tools/list"


def test_resources_are_listed_and_read_only_where_the_rule_allows(gw, server):
    """`repo://acme/*`: one `*` does not cross a `/` (repo://acme/api/settings)."""
    async def go():
        async with mcp_session(server) as conn:
            listing = await conn.session.list_resources()
            read = await conn.session.read_resource("repo://acme/api")
            server.reset()
            errors = []
            for uri in ("repo://other/secret", "repo://acme/api/settings"):
                with pytest.raises(MCPError) as err:
                    await conn.session.read_resource(uri)
                errors.append((uri, err, conn.last("resources/read")))
            return listing, read, errors, conn
    listing, read, errors, conn = run(go)
    assert [str(r.uri) for r in listing.resources] == ["repo://acme/api"]
    assert read.contents[0].text == "acme/api: the public API"
    assert server.reached() == []
    for uri, err, exchange in errors:
        assert err.value.code == REFUSED and err.value.data["reason"] == "resource_not_allowed"
        assert (exchange.status, exchange.headers["x-modelgate-reason"]) == (403, "resource_not_allowed")
        record = gw.audit_for(exchange.request_id)
        assert (record["decision"], record["reason"], record["mcp"]["resource"]) == ("deny", "resource_not_allowed", uri)


def test_prompts_are_listed_and_got_only_where_the_rule_allows(gw, server):
    async def go():
        async with mcp_session(server) as conn:
            listing = await conn.session.list_prompts()
            got = await conn.session.get_prompt("triage", {"repo": "acme/api"})
            server.reset()
            with pytest.raises(MCPError) as err:
                await conn.session.get_prompt("admin")
            return conn, listing, got, err
    conn, listing, got, err = run(go)
    assert [p.name for p in listing.prompts] == ["triage"]
    assert "acme/api" in got.messages[0].content.text
    record = sdk_refusal(gw, server, conn, err, "prompts/get", 403, "prompt_not_allowed")
    assert record["mcp"]["prompt"] == "admin"


def test_ops_sees_every_resource_and_prompt(gw, server):
    async def go():
        async with mcp_session(server, OPS) as conn:
            return conn, await conn.session.list_resources(), await conn.session.list_prompts()
    conn, resources, prompts = run(go)
    for recorded in server.reached():
        assert_credentials_swapped(recorded, server, conn.token)
    assert gw.audit_for(conn.last("prompts/list").request_id)["rule"] == "ops-tools"
    assert [str(r.uri) for r in resources.resources] == ["repo://acme/api", "repo://acme/api/settings",
                                                         "repo://other/secret"]
    assert [p.name for p in prompts.prompts] == ["triage", "admin"]


# --- argument constraints ---------------------------------------------------------------------


def test_an_argument_outside_its_patterns_raises_mcp_error(gw, server):
    async def go():
        async with mcp_session(server) as conn:
            with pytest.raises(MCPError) as err:
                await conn.session.call_tool("search_issues", {"repo": "other/x", "query": ""})
            return conn, err
    conn, err = run(go)
    sdk_refusal(gw, server, conn, err, "tools/call", 403, "argument_not_allowed")
    assert "repo" in err.value.message


@pytest.mark.parametrize("repo", ["acme/api", "acme/web", "acme/a.b-c_d"])
def test_an_argument_inside_its_patterns_passes(gw, server, repo):
    raw = Raw(server)
    raw.initialize()
    r = raw.call("search_issues", {"repo": repo, "query": "x"})
    assert r.status_code == 200 and "result" in answer(r), r.text[:300]
    [recorded] = server.reached()
    assert json.loads(recorded["body"])["params"]["arguments"]["repo"] == repo
    assert_credentials_swapped(recorded, server, raw.token)
    record = gw.audit_for(r.headers["x-request-id"])
    assert (record["decision"], record["rule"], record["mcp"]["tool"]) == ("allow", "triage-tools", "search_issues")


@pytest.mark.parametrize("arguments", [
    {"repo": "other/x", "query": ""},
    {"repo": "acme/../other", "query": ""},          # a `..` segment
    {"repo": "acme/..", "query": ""},
    {"repo": "acme/api/../../other/secret", "query": ""},
    {"repo": "acme/api/x", "query": ""},             # `*` does not cross `/`
    {"repo": "acme/%2e%2e", "query": ""},            # a `%`
    {"repo": "acme\\..\\other", "query": ""},        # a `\`
    {"repo": "acme/api\n", "query": ""},             # a control character
    {"repo": "acme/api\u0000", "query": ""},
    {"repo": ["acme/api"], "query": ""},             # not a string
    {"repo": 7, "query": ""},
    {"repo": None, "query": ""},
    {"query": ""},                                   # missing
])
def test_an_argument_outside_its_patterns_is_refused(gw, server, arguments):
    raw = Raw(server)
    raw.initialize()
    r = raw.call("search_issues", arguments)
    refused(gw, server, r, 403, "argument_not_allowed", code=REFUSED, rpc_id=raw.next_id)


# --- sessions bound to the workload -----------------------------------------------------------


def test_a_session_presented_by_another_workload_is_not_found(gw, server):
    """OPS may call search_issues — but not in TRIAGE's session."""
    triage = Raw(server, TRIAGE)
    triage.initialize()
    thief = Raw(server, OPS)
    thief.session, thief.version = triage.session, HANDSHAKE
    for r in (thief.request("tools/list"), thief.call("search_issues", {"repo": "acme/api", "query": ""}),
              thief.request("ping")):
        record = refused(gw, server, r, 404, "session_not_found")
        assert record["workload"]["spiffe_id"] == OPS
    # ...and the session is still TRIAGE's.
    assert triage.request("ping").status_code == 200


def test_a_session_is_bound_to_its_server_too(gw):
    """The MAC covers the provider: a session of one server is not one of another."""
    sse = Raw(gw.sse)
    sse.initialize()
    other = Raw(gw.json, token=sse.token)
    other.session, other.version = sse.session, HANDSHAKE
    refused(gw, gw.json, other.request("ping"), 404, "session_not_found")


def altered(session: str) -> list:
    server_id, _, mac = session.partition(".mg1.")
    flip = lambda s, i: s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    return [
        server_id,                                   # unwrapped: the server's own id
        f"{server_id}.mg1.",                         # no MAC
        f"{server_id}.mg1.{flip(mac, 0)}",           # MAC altered
        f"{server_id}.mg1.{mac[:-2]}",               # MAC cut
        f"{flip(server_id, 0)}.mg1.{mac}",           # id altered
        f"{server_id}x.mg1.{mac}",
        f"{server_id}.mg1.{mac}.mg1.{mac}",
        f"{server_id}.mg2.{mac}",
        "0" * 32 + ".mg1." + "A" * 43,               # forged
    ]


def test_a_forged_or_altered_session_is_not_found(gw, server):
    raw = Raw(server)
    raw.initialize()
    good = raw.session
    for bad in altered(good):
        raw.session = bad
        refused(gw, server, raw.request("ping"), 404, "session_not_found")
        server.reset()
    raw.session = good
    assert raw.request("ping").status_code == 200


def test_a_sessions_server_stream_opens_only_for_its_workload(gw, server):
    raw = Raw(server)
    raw.initialize()
    thief = Raw(server, OPS)
    thief.session, thief.version = raw.session, HANDSHAKE
    refused(gw, server, thief.get(), 404, "session_not_found")
    with raw.get(stream=True) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    [recorded] = server.requests_seen()
    assert recorded["method"] == "GET" and header_values(recorded, "mcp-session-id") == [raw.session.partition(".mg1.")[0]]
    assert_credentials_swapped(recorded, server, raw.token)


def test_delete_ends_a_session(gw, server):
    raw = Raw(server)
    raw.initialize()
    thief = Raw(server, OPS)
    thief.session, thief.version = raw.session, HANDSHAKE
    refused(gw, server, thief.delete(), 404, "session_not_found")
    r = raw.delete()
    assert r.status_code == 200, r.text
    [recorded] = server.requests_seen()
    assert recorded["method"] == "DELETE"
    assert header_values(recorded, "mcp-session-id") == [raw.session.partition(".mg1.")[0]]
    assert_credentials_swapped(recorded, server, raw.token)
    record = gw.audit_for(r.headers["x-request-id"])
    assert record["decision"] == "allow" and record["mcp"]["session"] == sha256(raw.session)
    # The server forgot it: the same session is now not found (the server's own 404).
    assert raw.request("ping").status_code == 404


def test_a_message_without_an_svid_is_refused(gw, server):
    """Refused before the body is read: the error's id is null."""
    r = requests.post(server.endpoint, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                      headers={"accept": "application/json, text/event-stream"}, timeout=10)
    refused(gw, server, r, 401, "missing_identity")
    assert answer(r)["id"] is None


def test_a_workload_no_rule_names_for_the_server_is_refused(gw, server):
    raw = Raw(server, BOT)
    r = raw.request("initialize", {"protocolVersion": HANDSHAKE, "capabilities": {},
                                   "clientInfo": {"name": "t", "version": "1"}}, session=False)
    refused(gw, server, r, 403, "method_not_allowed", code=NOT_ALLOWED)


# --- one message per POST, read strictly ------------------------------------------------------


PING = '{"jsonrpc":"2.0","id":1,"method":"ping"}'
CALL = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"acme/api"}}}'


@pytest.mark.parametrize("body", [f"[{PING}]", f"  [{PING}]", f"[{PING},{CALL}]", "[]"])
def test_a_batch_is_refused(gw, server, body):
    raw = Raw(server)
    raw.initialize()
    refused(gw, server, raw.post(raw=body), 400, "invalid_body", detail="jsonrpc_batch", code=INVALID)


@pytest.mark.parametrize("body", [
    f"{PING}\n{CALL}",
    f"{PING}{CALL}",
    f"{PING}\r\n{CALL}",
    f"{PING} 1",
    f"{PING}]",
])
def test_a_second_message_hidden_after_the_first_is_refused(gw, server, body):
    raw = Raw(server, OPS)
    raw.initialize()
    refused(gw, server, raw.post(raw=body), 400, "invalid_body", code=INVALID)


@pytest.mark.parametrize("body", [
    # repeated members, at the top and deeper: one reader takes the first, another the last
    '{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}',
    '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_repo","arguments":{"text":"x"}}}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues","arguments":{"repo":"acme/api","repo":"other/x","query":""}}}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":{"a":1,"a":2}}}}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","te\\u0078t":"y"}}}',
    # the wrong types
    '{"jsonrpc":"2.0","id":1.0,"method":"ping"}',
    '{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
    '{"jsonrpc":"2.0","id":1e0,"method":"ping"}',
    '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}',
    '{"jsonrpc":"2.0","id":[1],"method":"ping"}',
    '{"jsonrpc":"2.0","id":true,"method":"ping"}',
    '{"jsonrpc":"2.0","id":1,"method":7}',
    '{"jsonrpc":"2.0","id":1,"method":["tools/call"]}',
    '{"jsonrpc":"2.0","id":1,"method":null}',
    '{"jsonrpc":"1.0","id":1,"method":"ping"}',
    '{"jsonrpc":2.0,"id":1,"method":"ping"}',
    '{"id":1,"method":"ping"}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[]}',
    '{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":"text"}}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7,"arguments":{}}}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}',
    # not a method name
    '{"jsonrpc":"2.0","id":1,"method":"tools/call\\u0000"}',
    '{"jsonrpc":"2.0","id":1,"method":"tools call"}',
    '{"jsonrpc":"2.0","id":1,"method":""}',
    # not UTF-8 JSON, a lone surrogate, not JSON at all
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"\xff"}}}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"\\ud800"}}}',
    '{"jsonrpc":"2.0","id":1,"method":"ping"',
    "ping",
    "",
])
def test_a_malformed_message_is_refused(gw, server, body):
    raw = Raw(server, OPS)
    raw.initialize()
    refused(gw, server, raw.post(raw=body), 400, "invalid_body", code=INVALID)


@pytest.mark.parametrize("method", ["Tools/call", "tools/Call", "TOOLS/CALL", "Initialize", "Ping", "Tools/List"])
def test_a_known_method_in_other_case_is_refused(gw, server, method):
    raw = Raw(server, OPS)
    raw.initialize()
    r = raw.request(method, {"name": "echo", "arguments": {"text": "hi"}})
    refused(gw, server, r, 400, "invalid_body", detail="method_case", code=INVALID)


@pytest.mark.parametrize("method", ["tools/delete", "admin/shutdown", "logging/setLevel", "resources/templates/list"])
def test_a_method_no_rule_lists_is_refused(gw, server, method):
    raw = Raw(server)
    raw.initialize()
    refused(gw, server, raw.request(method, {}), 403, "method_not_allowed", code=NOT_ALLOWED, rpc_id=raw.next_id)


def test_a_method_the_rule_lists_passes(gw, server):
    """triage-tools lists completion/complete in `mcp`."""
    raw = Raw(server)
    raw.initialize()
    r = raw.request("completion/complete", {"ref": {"type": "ref/prompt", "name": "triage"},
                                            "argument": {"name": "repo", "value": "ac"}})
    assert r.status_code == 200, r.text[:300]
    [recorded] = server.requests_seen()
    assert json.loads(recorded["body"])["method"] == "completion/complete"
    record = gw.audit_for(r.headers["x-request-id"])
    assert (record["decision"], record["rule"], record["mcp"]["method"]) == ("allow", "triage-tools", "completion/complete")


# --- names read as the server reads them ------------------------------------------------------


@pytest.mark.parametrize("name", [
    "delete\\u005frepo",   # JSON decoding makes it delete_repo
    "\\u0064elete_repo",
    "Delete_Repo",         # deny rules match ignoring case...
    "DELETE_REPO",
    "delete_repo ",        # ...and surrounding white space
    " delete_repo",
    "\\tdelete_repo\\n",
])
def test_a_denied_tool_spelled_another_way_is_still_denied(gw, server, name):
    """OPS may call any tool: only the deny rule stands between it and delete_repo."""
    raw = Raw(server, OPS)
    raw.initialize()
    body = '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"%s","arguments":{"repo":"acme/api"}}}' % name
    record = refused(gw, server, raw.post(raw=body), 403, "tool_not_allowed", code=REFUSED, rpc_id=9)
    assert record["rule"] == "never-delete"


def test_an_escaped_allowed_name_is_decided_on_its_decoded_form(gw, server):
    raw = Raw(server)
    raw.initialize()
    body = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search\\u005fissues","arguments":{"repo":"acme/api","query":""}}}'
    r = raw.post(raw=body)
    assert r.status_code == 200, r.text[:300]
    assert gw.audit_for(r.headers["x-request-id"])["mcp"]["tool"] == "search_issues"


# --- the prompt guard -------------------------------------------------------------------------


@pytest.mark.parametrize("method,params", [
    ("tools/call", {"name": "echo", "arguments": {"text": f"my AWS key is {AKIA}"}}),
    ("tools/call", {"name": "search_issues", "arguments": {"repo": "acme/api", "query": AKIA}}),
    ("tools/call", {"name": "echo", "arguments": {"text": {"nested": [f"key={AKIA}"]}}}),
    ("prompts/get", {"name": "triage", "arguments": {"repo": AKIA}}),
])
def test_a_secret_in_arguments_never_reaches_the_server(gw, server, method, params):
    raw = Raw(server)
    raw.initialize()
    record = refused(gw, server, raw.request(method, params), 403, "prompt_blocked", detail="aws_access_key")
    assert AKIA not in json.dumps(record)


def test_an_escaped_secret_is_read_decoded(gw, server):
    raw = Raw(server)
    raw.initialize()
    escaped = AKIA.replace("I", "\\u0049")
    body = '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"%s"}}}' % escaped
    refused(gw, server, raw.post(raw=body), 403, "prompt_blocked", detail="aws_access_key")


def test_the_sdk_sees_a_blocked_secret_as_mcp_error(gw, server):
    async def go():
        async with mcp_session(server) as conn:
            with pytest.raises(MCPError) as err:
                await conn.session.call_tool("echo", {"text": f"AWS_ACCESS_KEY_ID={AKIA}"})
            return conn, err
    conn, err = run(go)
    sdk_refusal(gw, server, conn, err, "tools/call", 403, "prompt_blocked")


def test_a_clients_answer_to_the_server_is_read_by_the_guard(gw, server):
    """A client's response (a sampling result) passes for a workload the
    rules name, read by the prompt guard."""
    raw = Raw(server)
    raw.initialize()
    clean = {"jsonrpc": "2.0", "id": 0, "result": {"role": "assistant", "model": "m",
                                                    "content": {"type": "text", "text": "fine"}}}
    r = raw.post(clean)
    assert r.status_code < 300, (r.status_code, r.text[:300])
    assert len(server.requests_seen()) == 1
    record = gw.audit_for(r.headers["x-request-id"])
    assert record["decision"] == "allow" and record["mcp"]["kind"] == "response"
    server.reset()
    leaking = {**clean, "result": {**clean["result"], "content": {"type": "text", "text": f"the key: {AKIA}"}}}
    refused(gw, server, raw.post(leaking), 403, "prompt_blocked", detail="aws_access_key")


def test_arguments_bigger_than_the_body_limit_are_refused(gw, server):
    raw = Raw(server)
    raw.initialize()
    r = raw.call("echo", {"text": "a" * (1 << 20)})  # limits.max_body_bytes: 1 MiB
    assert (r.status_code, r.headers.get("x-modelgate-reason")) == (413, "body_too_large"), r.text[:300]
    time.sleep(0.1)
    assert server.requests_seen() == []
    assert gw.audit_for(r.headers["x-request-id"])["reason"] == "body_too_large"


# --- the 2026-07-28 revision: routing headers agree with the body ----------------------------


def modern(raw: Raw, method: str, params: dict, headers: dict) -> requests.Response:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "modelgate-tests", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    return raw.request(method, {**params, "_meta": meta}, session=False,
                       headers={"mcp-protocol-version": MODERN, "mcp-method": method, **headers})


SEARCH = {"name": "search_issues", "arguments": {"repo": "acme/api", "query": "flaky"}}


@pytest.mark.parametrize("workload,method,params,headers", [
    (TRIAGE, "tools/call", SEARCH, {"mcp-method": "tools/list", "mcp-name": "search_issues"}),
    (TRIAGE, "tools/list", {}, {"mcp-method": "tools/call"}),
    (TRIAGE, "tools/call", SEARCH, {"mcp-method": "Tools/call", "mcp-name": "search_issues"}),
    (OPS, "tools/call", {"name": "get_issue", "arguments": {"repo": "acme/api", "number": 1}},
     {"mcp-name": "delete_repo"}),
    (OPS, "tools/call", {"name": "get_issue", "arguments": {"repo": "acme/api", "number": 1}},
     {"mcp-name": "=?base64?ZGVsZXRlX3JlcG8=?="}),   # delete_repo
    (TRIAGE, "tools/call", SEARCH, {"mcp-name": "search_issues", "mcp-param-repo": "other/secret"}),
    (OPS, "resources/read", {"uri": "repo://acme/api"}, {"mcp-name": "repo://other/secret"}),
    (TRIAGE, "prompts/get", {"name": "triage", "arguments": {"repo": "acme/api"}}, {"mcp-name": "admin"}),
])
def test_a_routing_header_disagreeing_with_the_body_is_refused(gw, server, workload, method, params, headers):
    """A server may route on the headers: the gateway decides on what the
    server will read, so they must say what the body says."""
    raw = Raw(server, workload)
    r = modern(raw, method, params, headers)
    refused(gw, server, r, 400, "invalid_body")


def test_agreeing_routing_headers_pass(gw, server):
    raw = Raw(server)
    # The stand-in annotates search_issues' repo with x-mcp-header: Repo, and
    # the SDK's server requires its Mcp-Param-Repo.
    r = modern(raw, "tools/call", SEARCH, {"mcp-name": "search_issues", "mcp-param-repo": "acme/api"})
    assert r.status_code == 200, (r.status_code, r.headers.get("x-modelgate-reason"), r.text[:300])
    assert "flaky login test" in json.dumps(answer(r))
    [recorded] = server.requests_seen()
    assert header_values(recorded, "mcp-method") == ["tools/call"]
    assert_credentials_swapped(recorded, server, raw.token)
    record = gw.audit_for(r.headers["x-request-id"])
    assert record["decision"] == "allow" and record["mcp"]["era"] == "stateless" and record["mcp"]["session"] is None


def test_the_stateless_client_works_through_the_gateway(gw, server):
    """mcp.Client probes server/discover (2026-07-28) and, answered, stays
    stateless: no session, every request decided alone."""
    async def go():
        token = svid.mint(TRIAGE)
        http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=15)
        async with http, Client(streamable_http_client(server.endpoint, http_client=http)) as client:
            assert client.session.protocol_version == MODERN
            tools = [t.name for t in (await client.list_tools()).tools]
            result = await client.call_tool("search_issues", {"repo": "acme/api", "query": "flaky"})
            with pytest.raises(MCPError) as err:
                await client.call_tool("delete_repo", {"repo": "acme/api"})
            return token, tools, result, err
    token, tools, result, err = run(go)
    assert tools == TRIAGE_TOOLS and not result.is_error
    assert err.value.data["reason"] == "tool_not_allowed"
    seen = server.requests_seen()
    assert [json.loads(r["body"])["method"] for r in seen] == ["server/discover", "tools/list", "tools/call"]
    for recorded in seen:
        assert header_values(recorded, "mcp-session-id") == []
        assert_credentials_swapped(recorded, server, token)


# --- the older transport and other paths ------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", "sse"),
    ("GET", "mcp"),   # no session: not a session's stream
    ("POST", "messages?sessionId=0123456789abcdef"),
    ("POST", "messages/?session_id=0123456789abcdef"),
])
def test_the_old_http_sse_transport_is_refused(gw, server, method, path):
    raw = Raw(server)
    if method == "GET":
        r = raw.get(path, session=False)
    else:
        r = raw.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, path=path, session=False)
    record = refused(gw, server, r, 403, "endpoint_not_allowed", detail="http_sse_transport")
    assert "Streamable HTTP" in json.dumps(answer(r))
    assert record["workload"]["spiffe_id"] == TRIAGE


@pytest.mark.parametrize("method,path", [("POST", "other"), ("POST", "mcp/extra"), ("PUT", "mcp"), ("GET", "")])
def test_every_other_path_is_refused(gw, server, method, path):
    raw = Raw(server)
    r = requests.request(method, f"{server.gateway_url}{server.prefix}{path}", data=PING,
                         headers=raw.headers(session=False), timeout=10)
    assert r.status_code in (403, 405), r.text[:300]
    time.sleep(0.1)
    assert server.requests_seen() == []
    assert gw.audit_for(r.headers["x-request-id"])["decision"] == "deny"


# --- the audit trail --------------------------------------------------------------------------


def test_every_message_leaves_one_chained_record(gw, server):
    async def go():
        async with mcp_session(server, initialize=False) as conn:
            await conn.session.initialize()
            await conn.session.list_tools()
            await conn.session.call_tool("get_issue", {"repo": "acme/api", "number": 1})
            with pytest.raises(MCPError):
                await conn.session.call_tool("delete_repo", {"repo": "acme/api"})
            return conn
    conn = run(go)  # leaving the session closes its stream and DELETEs it
    posts = [e for e in conn.exchanges if e.method == "POST"]
    assert [e.rpc_method for e in posts] == ["initialize", "notifications/initialized", "tools/list", "tools/call",
                                             "tools/call"]
    records = [gw.audit_for(e.request_id) for e in conn.exchanges]
    for exchange, record in zip(conn.exchanges, records):
        mcp = record["mcp"]
        if exchange.method == "POST":
            assert mcp["method"] == exchange.rpc_method
            assert mcp["kind"] == ("notification" if "id" not in exchange.message else "request")
            if "id" in exchange.message:
                assert str(mcp["id"]) == str(exchange.message["id"])
        if exchange.rpc_method == "initialize":
            assert mcp["session"] is None
        else:
            assert mcp["session"] == sha256(conn.session_id)
        assert record["workload"]["spiffe_id"] == TRIAGE and record["provider"] == server.name
    assert [r["decision"] for r, e in zip(records, conn.exchanges) if e.method == "POST"] == \
        ["allow", "allow", "allow", "allow", "deny"]
    assert_chained(gw, records)


def test_the_arguments_digest_is_of_the_arguments_as_sent(gw, server):
    raw = Raw(server)
    raw.initialize()
    arguments = '{"query":"flaky","repo":"acme/api"}'
    body = '{"jsonrpc":"2.0","id":"a-7","method":"tools/call","params":{"name":"search_issues","arguments":%s}}' % arguments
    r = raw.post(raw=body)
    assert r.status_code == 200, r.text[:300]
    mcp = gw.audit_for(r.headers["x-request-id"])["mcp"]
    assert (mcp["id"], mcp["tool"], mcp["arguments_sha256"]) == ("a-7", "search_issues", sha256(arguments))
    assert (mcp["resource"], mcp["prompt"]) == (None, None)
