"""A stand-in MCP server for tests, built with the official MCP Python SDK.

A GitHub-like tool server (`mcp`'s MCPServer) serving the Streamable HTTP
transport at /mcp.

    python tests/mcp_server.py --port 18090 [--json] [--stateless]

Stateful by default: `initialize` opens a handshake-era session
(`Mcp-Session-Id`), `GET /mcp` opens its server stream, `DELETE /mcp` ends
it. A request carrying `Mcp-Protocol-Version: 2026-07-28` is served by the
SDK's stateless per-request path (that revision has no sessions), as the
SDK's server does by default. `--json` answers each POST with one JSON
body; without it, answers are SSE streams.

Tools: search_issues(repo, query), get_issue(repo, number),
delete_repo(repo), echo(text). Resources: repo://acme/api,
repo://acme/api/settings, repo://other/secret. Prompts: triage(repo),
admin().

Every HTTP request is recorded the moment it arrives — before the SDK sees
it, so a request the SDK refuses (or that never finishes) still shows —
with its method, path (with the query), headers (lower-cased names, in
order, with repeats) and raw body: GET /__requests returns them, POST
/__reset clears them, GET /__health answers while the server runs.
"""

import argparse
import base64
import json
import threading

from typing import Annotated

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field

RECORDED: list = []
LOCK = threading.Lock()

server = MCPServer("stand-in-github", version="1.0.0",
                   instructions="A stand-in GitHub: issues, repositories, prompts.")

ISSUES = {
    "acme/api": [{"number": 1, "title": "flaky login test", "state": "open"},
                 {"number": 2, "title": "timeout on /v1/orders", "state": "open"}],
    "other/secret": [{"number": 7, "title": "the launch codes", "state": "open"}],
}


# `repo` is mirrored in the 2026-07-28 revision's `Mcp-Param-Repo` header
# (`x-mcp-header`): a server may route on it.
@server.tool()
def search_issues(repo: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Repo"})], query: str) -> dict:
    """Search a repository's issues."""
    found = [i for i in ISSUES.get(repo, []) if query.lower() in i["title"].lower() or not query]
    return {"repo": repo, "query": query, "issues": found}


@server.tool()
def get_issue(repo: str, number: int) -> dict:
    """One issue of a repository."""
    for issue in ISSUES.get(repo, []):
        if issue["number"] == number:
            return {"repo": repo, **issue}
    return {"repo": repo, "number": number, "title": None, "state": "missing"}


@server.tool()
def delete_repo(repo: str) -> str:
    """Delete a repository. (The stand-in deletes nothing; it only answers.)"""
    return f"deleted {repo}"


@server.tool()
def echo(text: str) -> str:
    """The text, back."""
    return text


@server.resource("repo://acme/api", name="acme-api", mime_type="text/plain")
def acme_api() -> str:
    return "acme/api: the public API"


@server.resource("repo://acme/api/settings", name="acme-api-settings", mime_type="text/plain")
def acme_api_settings() -> str:
    return "acme/api settings: deploy keys"


@server.resource("repo://other/secret", name="other-secret", mime_type="text/plain")
def other_secret() -> str:
    return "other/secret: the launch codes"


@server.prompt()
def triage(repo: str) -> str:
    """Triage a repository's open issues."""
    return f"Triage the open issues of {repo}: label, deduplicate, prioritise."


@server.prompt()
def admin() -> str:
    """Administer the organisation."""
    return "You are an organisation administrator: you may delete repositories."


class Recorder:
    """ASGI middleware: records each request as it arrives, serves the
    /__ endpoints, and hands every other request on to the SDK's app with
    its body replayed."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("raw_path") or scope["path"].encode()
        path = path.decode("latin-1") + (("?" + scope["query_string"].decode("latin-1")) if scope.get("query_string") else "")
        if path in ("/__requests", "/__reset", "/__health"):
            return await self.control(path, scope, receive, send)
        entry = {"method": scope["method"], "path": path,
                 "headers": [[k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in scope["headers"]],
                 "body": None, "body_b64": None}
        with LOCK:
            RECORDED.append(entry)
        # Read the whole body before the SDK does, so the record holds the
        # bytes as they arrived, then replay it.
        chunks, more, trailing = [], True, None
        while more:
            message = await receive()
            if message["type"] != "http.request":
                trailing = message  # the client went away before the body ended
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        with LOCK:
            entry["body"] = body.decode("utf-8", "replace")
            entry["body_b64"] = base64.b64encode(body).decode()
        replay = [{"type": "http.request", "body": body, "more_body": False}] if trailing is None else [trailing]

        async def replayed():
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replayed, send)

    async def control(self, path, scope, receive, send):
        if path == "/__reset" and scope["method"] == "POST":
            with LOCK:
                RECORDED.clear()
            payload = {"ok": True}
        elif path == "/__requests":
            with LOCK:
                payload = json.loads(json.dumps(RECORDED))
        else:
            payload = {"ok": True}
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


def app(json_response: bool = False, stateless: bool = False):
    """The recorded ASGI app. Host and Origin checks (the SDK's DNS-rebinding
    protection) are off: requests arrive through the gateway, whose Host is
    the gateway's."""
    inner = server.streamable_http_app(
        streamable_http_path="/mcp", json_response=json_response, stateless_http=stateless,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    return Recorder(inner)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--json", action="store_true", help="answer each POST with JSON (default: an SSE stream)")
    parser.add_argument("--stateless", action="store_true", help="no handshake-era sessions")
    args = parser.parse_args()
    print(f"stand-in MCP server on http://{args.host}:{args.port}/mcp "
          f"({'json' if args.json else 'sse'}, {'stateless' if args.stateless else 'stateful'})", flush=True)
    uvicorn.run(app(args.json, args.stateless), host=args.host, port=args.port, log_level="warning",
                lifespan="on", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
