"""An MCP server gets a credential of its own: a JWT the gateway mints per
call, with the server's own audience (the MCP authorization spec: a token
issued for another party is never passed through). The agent's SVID never
reaches the server, and a refused call mints nothing for it."""

import json
import subprocess

import pytest
from jwcrypto import jwk

from harness import ROOT
from mcp_harness import MCP_PROVIDERS, MCP_RULES, TRIAGE, Raw, answer, demo_policy, header_values, running_mcp_gateway
from token_server import verify_es256

SIGNING_KEY = jwk.JWK.generate(kty="EC", crv="P-256")
PEM = SIGNING_KEY.export_to_pem(private_key=True, password=None).decode()
ISSUER = "https://modelgate.test"
AUDIENCE = "https://mcp.github.internal"


def printed_jwks() -> dict:
    """The JWKS as `modelgate jwks` prints it: what the MCP server is given."""
    out = subprocess.run(["cargo", "run", "-q", "-p", "modelgate-cli", "--bin", "modelgate", "--", "jwks",
                          "--key-env", "MODELGATE_SIGNING_KEY"], cwd=ROOT, capture_output=True, text=True,
                         env={**__import__("os").environ, "MODELGATE_SIGNING_KEY": PEM}, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def gw():
    minted = {"type": "minted_jwt", "env": "MODELGATE_SIGNING_KEY", "issuer": ISSUER, "audience": AUDIENCE,
              "ttl_seconds": 60}
    providers = [{**p, "credential": minted} for p in MCP_PROVIDERS]
    patch = {"providers": demo_policy()["providers"] + providers, "rules": demo_policy()["rules"] + MCP_RULES}
    with running_mcp_gateway(patch, env={"MODELGATE_SIGNING_KEY": PEM}) as gw:
        yield gw


def test_a_tool_call_reaches_the_server_with_a_jwt_minted_for_it_alone(gw):
    server = gw.sse
    raw = Raw(server, TRIAGE)
    raw.initialize()
    r = raw.call("search_issues", {"repo": "acme/api", "query": "flaky"})
    assert r.status_code == 200 and "result" in answer(r), r.text[:300]
    (seen,) = server.reached()
    (authorization,) = header_values(seen, "authorization")
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer" and token != raw.token
    keys = {k["kid"]: jwk.JWK(**k) for k in printed_jwks()["keys"]}
    claims = verify_es256(token, keys)
    assert (claims["iss"], claims["aud"], claims["sub"]) == (ISSUER, AUDIENCE, TRIAGE)
    assert 0 < claims["exp"] - claims["iat"] <= 60
    record = gw.audit_for(r.headers["x-request-id"])
    assert record["credential"] == {"type": "minted_jwt", "name": server.name}


def test_a_refused_call_mints_nothing_and_reaches_nothing(gw):
    server = gw.sse
    raw = Raw(server, TRIAGE)
    raw.initialize()
    r = raw.call("delete_repo", {"repo": "acme/api"})
    assert (r.status_code, r.headers["x-modelgate-reason"]) == (403, "tool_not_allowed")
    assert server.reached() == []
    record = gw.audit_for(r.headers["x-request-id"])
    assert record["credential"] is None and record["mcp"]["tool"] == "delete_repo"
