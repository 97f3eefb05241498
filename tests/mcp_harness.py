"""The gateway in front of MCP servers, for tests/test_mcp.py: the demo
configuration plus two stand-in MCP servers (tests/mcp_server.py, the
official SDK's server) behind the same Envoy — one answering in SSE
streams at /github/, one in JSON at /githubjson/ — with the policy of
docs/mcp.md's worked example; and the clients a test reaches them with:
the official SDK's (`mcp_session`) and raw HTTP with hand-written JSON-RPC
(`Raw`).
"""

import contextlib
import hashlib
import json
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields

import anyio
import httpx2
import requests
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

import svid
from conftest import Gateway, running_gateway
from harness import ENVOY_YAML, ROOT, free_port, policy_text, wait_until

# The workloads. TRIAGE is docs/mcp.md's issue-triage agent; OPS may use
# every tool, resource and prompt — but a deny rule still keeps delete_*
# from it; BOT (the demo's support bot) has no rule naming an MCP server.
TRIAGE = "spiffe://example.org/ns/agents/sa/triage"
OPS = "spiffe://example.org/ns/agents/sa/ops"
BOT = "spiffe://example.org/ns/support/sa/bot"

# Handshake-era requests after `initialize` carry this version.
HANDSHAKE = "2025-11-25"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"

# name -> (answer shape, path prefix)
SERVERS = {"github": ("sse", "/github/"), "githubjson": ("json", "/githubjson/")}

MCP_PROVIDERS = [
    {"name": name, "api": "mcp", "match": {"path_prefix": prefix},
     "credential": {"type": "api_key", "env": "GITHUB_MCP_TOKEN"},
     "session_key": {"env": "MCP_SESSION_KEY"}}
    for name, (_, prefix) in SERVERS.items()
]

MCP_RULES = [
    # docs/mcp.md's worked example, on both servers, with `echo` (a
    # free-text tool for the prompt guard and the size limit) added. The
    # session's lifecycle and the listings are open to any workload an allow
    # rule names for the server; `mcp` lists the other methods.
    {"id": "triage-tools", "effect": "allow",
     "workloads": [TRIAGE], "providers": list(SERVERS),
     "mcp": ["completion/complete"],
     "tools": ["search_issues", "get_issue", "echo"],
     "arguments": {"search_issues": {"repo": ["acme/*"]}},
     "resources": ["repo://acme/*"],
     "prompts": ["triage"]},
    {"id": "ops-tools", "effect": "allow",
     "workloads": [OPS], "providers": list(SERVERS),
     "mcp": ["*"],
     "tools": ["*"], "resources": ["repo://**"], "prompts": ["*"]},
    {"id": "never-delete", "effect": "deny",
     "workloads": ["spiffe://example.org/**"], "providers": list(SERVERS),
     "tools": ["delete_*"]},
]


def demo_policy() -> dict:
    """The policy envoy/envoy.yaml ships."""
    return json.loads(policy_text(yaml.safe_load(ENVOY_YAML.read_text())))


def mcp_policy_patch() -> dict:
    """The demo's providers and rules with the MCP servers' appended (a
    patch replaces the whole lists)."""
    demo = demo_policy()
    return {"providers": demo["providers"] + MCP_PROVIDERS, "rules": demo["rules"] + MCP_RULES}


# --- the stand-in MCP servers ----------------------------------------------


@dataclass
class McpServer:
    """One stand-in MCP server: where the gateway serves it, and what it received."""

    name: str
    mode: str            # "sse" or "json": how it answers a POST
    prefix: str          # the gateway path prefix, e.g. "/github/"
    direct_url: str      # the server itself, bypassing the gateway
    token: str           # the key the gateway injects
    gateway_url: str = ""

    @property
    def endpoint(self) -> str:
        """The MCP endpoint through the gateway."""
        return f"{self.gateway_url}{self.prefix}mcp"

    def requests_seen(self) -> list:
        """Every request the server received since the last reset, each
        recorded as it arrived: method, path, headers, body."""
        return requests.get(f"{self.direct_url}/__requests", timeout=5).json()

    def reset(self) -> None:
        requests.post(f"{self.direct_url}/__reset", timeout=5)

    def reached(self) -> list:
        """What reached the server but what the SDK's client sends on its own:
        the session's GET stream (opened, and re-opened, after `initialize`)
        and the DELETE ending the session when the client closes."""
        return [r for r in self.requests_seen() if r["method"] not in ("GET", "DELETE")]

    def messages(self) -> list:
        """The JSON-RPC messages POSTed to the server, parsed."""
        out = []
        for r in self.requests_seen():
            if r["method"] == "POST":
                try:
                    out.append(json.loads(r["body"]))
                except (TypeError, ValueError):
                    out.append(None)
        return out

    async def wait_for(self, check, what: str, timeout: float = 5.0):
        """Waits (in the event loop: the SDK's client sends on it) until
        `check(requests_seen())` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check(self.requests_seen())
            if found:
                return found
            await anyio.sleep(0.05)
        raise AssertionError(f"{self.name}: {what} never arrived; saw {self.requests_seen()}")


@dataclass
class McpGateway(Gateway):
    """The gateway, and the MCP servers behind it."""

    servers: dict = field(default_factory=dict)

    @property
    def sse(self) -> McpServer:
        return self.servers["github"]

    @property
    def json(self) -> McpServer:
        return self.servers["githubjson"]


def add_mcp_routes(config: dict, ports: dict) -> None:
    """One Envoy cluster per MCP server, and its route (ahead of every
    other route: none of theirs matches /github/ or /githubjson/)."""
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    for name, port in ports.items():
        cluster = f"mcp_{name}"
        config["static_resources"]["clusters"].append({
            "name": cluster, "type": "STATIC", "connect_timeout": "2s",
            "per_connection_buffer_limit_bytes": 16777216,
            "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        })
        routes.insert(0, {"match": {"prefix": SERVERS[name][1]},
                          "route": {"cluster": cluster, "prefix_rewrite": "/", "timeout": "120s"}})


@contextlib.contextmanager
def running_mcp_gateway(policy_patch: dict | None = None, mutate=None, env: dict | None = None):
    """The demo gateway with the two stand-in MCP servers behind it and the
    policy of `mcp_policy_patch()` (plus `policy_patch`); torn down on exit."""
    token = f"mcp-test-github-{secrets.token_hex(12)}"
    keys = {"GITHUB_MCP_TOKEN": token, "MCP_SESSION_KEY": secrets.token_hex(32), **(env or {})}
    ports = {name: free_port() for name in SERVERS}
    procs = {}
    servers = {}
    try:
        for name, (mode, prefix) in SERVERS.items():
            args = [sys.executable, str(ROOT / "tests" / "mcp_server.py"), "--port", str(ports[name])]
            procs[name] = subprocess.Popen(args + (["--json"] if mode == "json" else []),
                                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            servers[name] = McpServer(name=name, mode=mode, prefix=prefix, direct_url=f"http://127.0.0.1:{ports[name]}",
                                      token=token)
        for name, server in servers.items():
            wait_until(lambda: requests.get(f"{server.direct_url}/__health", timeout=1).ok, 20, f"MCP server {name}",
                       procs[name])

        def mutated(config, extra_ports):
            add_mcp_routes(config, ports)
            if mutate:
                mutate(config, extra_ports)

        with running_gateway({**mcp_policy_patch(), **(policy_patch or {})}, mutate=mutated, env=keys) as gw:
            for server in servers.values():
                server.gateway_url = gw.url
            yield McpGateway(**{f.name: getattr(gw, f.name) for f in fields(Gateway)}, servers=servers)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


# --- the official SDK's client ---------------------------------------------


@dataclass
class Exchange:
    """One HTTP exchange the SDK's client made, as the gateway answered it."""

    method: str           # HTTP method
    message: dict | None  # the JSON-RPC message POSTed
    status: int
    headers: dict

    @property
    def rpc_method(self):
        return (self.message or {}).get("method")

    @property
    def request_id(self):
        return self.headers.get("x-request-id")


@dataclass
class McpConnection:
    session: ClientSession
    exchanges: list
    token: str

    def last(self, rpc_method: str) -> Exchange:
        """The last POST of a message with `rpc_method`."""
        return [e for e in self.exchanges if e.rpc_method == rpc_method][-1]

    @property
    def session_id(self):
        """The session id the gateway handed the client."""
        return next((e.headers.get("mcp-session-id") for e in self.exchanges if e.rpc_method == "initialize"), None)


@contextlib.asynccontextmanager
async def mcp_session(server: McpServer, workload: str = TRIAGE, *, token: str | None = None,
                      initialize: bool = True, reset: bool = True):
    """The official client (Streamable HTTP, an httpx2 client carrying the
    workload's JWT-SVID as its bearer token) connected through the gateway,
    as docs/mcp.md shows. With `initialize`, the handshake is done and —
    once the server has the `notifications/initialized` — the server's
    record is reset, so a test sees only what it sent itself."""
    token = token or svid.mint(workload)
    exchanges: list = []

    async def observe(response):
        content = response.request.content
        try:
            message = json.loads(content) if content else None
        except ValueError:
            message = None
        exchanges.append(Exchange(response.request.method, message, response.status_code, dict(response.headers)))

    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(15, read=60),
                              event_hooks={"response": [observe]})
    async with http, streamable_http_client(server.endpoint, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            if initialize:
                await session.initialize()
                await server.wait_for(lambda seen: [r for r in seen if '"notifications/initialized"' in (r["body"] or "")],
                                "notifications/initialized")
                if reset:
                    server.reset()
            yield McpConnection(session, exchanges, token)


# --- raw HTTP ----------------------------------------------------------------


def answer(r: requests.Response):
    """The JSON-RPC message of an answer, whether JSON or an SSE stream (the
    last message event; the SDK writes CRLF line ends)."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        messages = []
        for event in re.split(r"\r?\n\r?\n", r.text):
            data = [line[5:].lstrip(" ") for line in re.split(r"\r?\n", event) if line.startswith("data:")]
            if data and "".join(data):
                messages.append(json.loads("\n".join(data)))
        return messages[-1] if messages else None
    return r.json() if r.content else None


class Raw:
    """Hand-written JSON-RPC through the gateway with `requests`, as one
    workload: every byte of the body is the test's."""

    def __init__(self, server: McpServer, workload: str = TRIAGE, *, token: str | None = None):
        self.server = server
        self.workload = workload
        self.token = token or svid.mint(workload)
        self.session: str | None = None
        self.version: str | None = None
        self.next_id = 0

    def headers(self, extra: dict | None = None, session: bool = True) -> dict:
        h = {"authorization": f"Bearer {self.token}", "accept": ACCEPT, "content-type": "application/json"}
        if session and self.session:
            h["mcp-session-id"] = self.session
        if session and self.version:
            h["mcp-protocol-version"] = self.version
        return {**h, **(extra or {})}

    def id(self) -> int:
        self.next_id += 1
        return self.next_id

    def post(self, message=None, *, raw: bytes | str | None = None, headers: dict | None = None,
             session: bool = True, path: str = "mcp") -> requests.Response:
        data = raw if raw is not None else json.dumps(message)
        return requests.post(f"{self.server.gateway_url}{self.server.prefix}{path}", data=data,
                             headers=self.headers(headers, session), timeout=15)

    def request(self, method: str, params: dict | None = None, **kw) -> requests.Response:
        message = {"jsonrpc": "2.0", "id": self.id(), "method": method}
        if params is not None:
            message["params"] = params
        return self.post(message, **kw)

    def call(self, tool: str, arguments: dict, **kw) -> requests.Response:
        return self.request("tools/call", {"name": tool, "arguments": arguments}, **kw)

    def initialize(self, reset: bool = True) -> requests.Response:
        """The handshake: initialize, then notifications/initialized; the
        session the gateway handed back is kept for later requests."""
        r = self.request("initialize", {"protocolVersion": HANDSHAKE, "capabilities": {},
                                        "clientInfo": {"name": "modelgate-tests", "version": "1"}}, session=False)
        assert r.status_code == 200, (r.status_code, r.headers.get("x-modelgate-reason"), r.text[:300])
        self.session, self.version = r.headers.get("mcp-session-id"), HANDSHAKE
        n = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert n.status_code == 202, (n.status_code, n.headers.get("x-modelgate-reason"), n.text[:300])
        if reset:
            self.server.reset()
        return r

    def delete(self, headers: dict | None = None) -> requests.Response:
        return requests.delete(self.server.endpoint, headers=self.headers(headers), timeout=15)

    def get(self, path: str = "mcp", headers: dict | None = None, session: bool = True, **kw) -> requests.Response:
        return requests.get(f"{self.server.gateway_url}{self.server.prefix}{path}", headers=self.headers(headers, session),
                            timeout=15, **kw)


# --- audit -------------------------------------------------------------------


def sha256(data) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


def assert_chained(gw: Gateway, records: list) -> None:
    """Each record carries its chain members, and links to the record
    before it in its chain when that one is in the log."""
    lines = [line for line in gw.access_log.read_text().splitlines() if line.strip()]
    by_link = {}
    for line in lines:
        r = json.loads(line)
        if "chain" in r:
            by_link[(r["chain"], r["seq"])] = line
    for record in records:
        assert isinstance(record["chain"], str) and record["chain"], record
        assert isinstance(record["seq"], int) and record["seq"] >= 1, record
        if record["seq"] == 1:
            assert record["prev"] is None, record
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", record["prev"] or ""), record
            before = by_link.get((record["chain"], record["seq"] - 1))
            if before is not None:
                assert sha256(before) == record["prev"], f"record {record['seq']} does not link to the one before it"


def header_values(recorded, name):
    """Every value of header `name` in a request the MCP server recorded."""
    return [v for k, v in recorded["headers"] if k == name]


def refused(gw, server, r, status, reason, detail=None, code=None, rpc_id=None):
    """A refusal as docs/mcp.md has it: the reason's status and header, a
    JSON-RPC error naming the reason, nothing at the MCP server, one record."""
    assert (r.status_code, r.headers.get("x-modelgate-reason")) == (status, reason), \
        (r.status_code, r.headers.get("x-modelgate-reason"), r.text[:300])
    error = answer(r)
    assert error["jsonrpc"] == "2.0" and error["error"]["data"]["reason"] == reason, error
    if code is not None:
        assert error["error"]["code"] == code, error
    if rpc_id is not None:
        assert error["id"] == rpc_id, error
    time.sleep(0.15)
    assert server.requests_seen() == [], "a message the gateway should have refused reached the MCP server"
    record = gw.audit_for(r.headers["x-request-id"])
    assert (record["decision"], record["reason"]) == ("deny", reason), record
    if detail is not None:
        assert record["detail"] == detail, record
    return record
