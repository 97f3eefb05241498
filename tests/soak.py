"""The soak: modelgate under sustained mixed load, dependency faults and
live policy swaps, with every response scored against the decision it
must get (docs/reliability.md).

One real Envoy 1.40 with two workers receives modelgate's configuration
through ECDS from a watched file — the way Istio pushes a changed
EnvoyFilter — and in front of it:

- wrk (Debian) with a Lua mix: allowed JSON and streamed calls to the
  OpenAI, Anthropic and Gemini apis, a token-exchange provider, a model a
  rule denies, a model only one of the two policies allows, a failed
  condition, a gateway budget and a global budget run dry, a pool of
  distinct SVIDs larger than the verified-SVID cache, workloads crowding a
  budget's slots, expired, forged and missing SVIDs, malformed and
  oversized bodies. One connection per wrk thread, so each response is
  matched to the request that asked it;
- side traffic in Python: the official SDKs' streams (openai, anthropic,
  google-genai), MCP tool calls allowed and refused, slow bodies, clients
  that abort mid-body, and upstream stalls, resets and slow streams;
- a policy swapper: `--reloads` swaps between policies A and B (they
  disagree on one model and on the token exchange's service account), and
  one invalid policy Envoy must reject;
- named faults, one after another: the token endpoint down, slow, answering
  garbage and cut mid-answer; the bundle endpoint down, then rotating its
  key; Redis down and back; the ledger down and back.

At the end the scoreboard reads the audit log, the stand-in providers'
logs and Envoy's stats, and fails on any of: a response that is not the
decision its kind must get under the policy its record names; a request
without exactly one schema-valid record; a record of a policy that was
never live or that Envoy rejected; anything denied reaching a provider, or
reaching it with a caller's credential; an exchanged token from one policy
used under another; an SVID verified under the old bundle accepted under
the new one; a budget spent past its cap; `modelgate audit verify`
failing; a VM restarted; a store past its bound; RSS growing more than
`--rss-growth` percent over the second half.

    python tests/soak.py [--requests 200000] [--connections 64] [--reloads 20] [--json out.json]
    python tests/soak.py --short      # CI: 12,000 requests, 6 reloads, every fault
"""

import argparse
import base64
import bisect
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import jsonschema_rs
import requests
import yaml

import svid
from bundle_server import BundleServer
from bundle_server import cluster as static_cluster
from harness import (ROOT, WASM, answer_head, chat_head, ecds_resource, envoy_binary, envoy_config, free_port,
                     policy_text, provider_keys, push, push_and_wait, through_ecds, wait_until, wasm_filter)
from ledger_stack import Ledger, Redis, binaries
from token_server import TokenServer

BOT = "spiffe://example.org/ns/support/sa/bot"
OFFICE = "spiffe://example.org/ns/soak/sa/office"
SPENDER = "spiffe://example.org/ns/soak/sa/spender"
GLOBAL = "spiffe://example.org/ns/soak/sa/global"
FLEET = "spiffe://example.org/ns/soak/sa/fleet"
AGENT = "spiffe://example.org/ns/agents/sa/triage"
CROWD = [f"spiffe://example.org/ns/crowd/sa/w{i}" for i in range(24)]
# More workloads exchanging tokens than a worker keeps tokens for.
FED_FLEET = [f"spiffe://example.org/ns/fleet/sa/f{i}" for i in range(12)]
ROTATING = "spiffe://rotating.example/ns/app/sa/agent"
HI = [{"role": "user", "content": "Say hello"}]
MAX_TOKENS = 16
# What one small call reserves (bytes + 1024 + max tokens) is about 1,100
# tokens and settles at about 15: room for a few dozen calls, then dry.
SPENDER_CAP = 3_000
GLOBAL_CAP = 3_000
ROTATING_KEYS = (svid.new_ec_key("rot-1"), svid.new_ec_key("rot-2"))
FORGED_KEY = svid.new_ec_key("demo-k1")  # the demo's kid, not its key
LEDGER_KEY = "soak-ledger-" + secrets.token_hex(16)
SVID_CACHE = 64
COLD_POOL = 512
CROWD_SLOTS = 8
TOKEN_CACHE = 4
ROUTE_TIMEOUT = "4s"
# `modelgate audit verify`: the debug build the end-to-end tests use too
# (`make soak` builds it).
CLI = ROOT / "target" / "debug" / "modelgate"


# --- the two policies -------------------------------------------------------


def policy(revision: str, flip: bool) -> dict:
    """The demo policy plus the soak's workloads. A and B (`flip`) disagree
    on one model for the bot (gpt-4.1-mini), on the service account the
    token exchange asks for, and on how often the rotating domain's bundle
    is refreshed; everything else decides the same."""
    demo = json.loads(policy_text(yaml.safe_load((ROOT / "envoy" / "envoy.yaml").read_text())))
    account = "sa_B" if flip else "sa_A"
    providers = demo["providers"] + [
        {"name": "fed", "api": "openai", "match": {"path_prefix": "/fed/"},
         "credential": {"type": "token_exchange", "cluster": "token_server", "path": "/oauth/token",
                        "timeout_ms": 500, "profile": "openai", "subject": "svid", "refresh_margin_seconds": 1,
                        "params": {"identity_provider_id": "idp_soak"},
                        "accounts": [{"workloads": ["spiffe://example.org/**"],
                                      "params": {"service_account_id": account}}]}},
        {"name": "tools", "api": "mcp", "match": {"path_prefix": "/tools/"},
         "credential": {"type": "api_key", "env": "MCP_TOKEN"}, "session_key": {"env": "MCP_SESSION_KEY"}},
    ]
    rules = [r for r in demo["rules"]]
    for r in rules:
        if r["id"] == "support-bot":
            r["providers"] = r["providers"] + ["fed"]
    rules += [
        {"id": "office", "effect": "allow", "workloads": [OFFICE], "providers": ["openai"], "models": ["gpt-4o-mini"],
         "when": {"source_cidrs": ["10.0.0.0/8"]}},
        {"id": "spenders", "effect": "allow", "workloads": [SPENDER, GLOBAL, FLEET, "spiffe://example.org/ns/crowd/**"],
         "providers": ["openai"], "models": ["gpt-4o-mini"]},
        {"id": "rotating", "effect": "allow", "workloads": ["spiffe://rotating.example/**"], "providers": ["openai"],
         "models": ["gpt-4o-mini"]},
        {"id": "fed-fleet", "effect": "allow", "workloads": ["spiffe://example.org/ns/fleet/**"], "providers": ["fed"],
         "models": ["gpt-4o-mini"]},
        {"id": "agent-tools", "effect": "allow", "workloads": [AGENT], "providers": ["tools"], "tools": ["echo"]},
    ]
    if flip:
        rules.insert(0, {"id": "policy-b", "effect": "deny", "workloads": [BOT], "providers": ["*"],
                         "models": ["gpt-4.1-mini"]})
    trust_domains = demo["trust_domains"] + [
        {"name": "rotating.example",
         "bundle_endpoint": {"cluster": "bundles", "path": "/rotating", "refresh_seconds": 3 if flip else 1,
                             "timeout_ms": 500}}]
    identity = {**demo["identity"], "jwt_svid": {**demo["identity"]["jwt_svid"], "cache_size": SVID_CACHE,
                                                 "audiences": demo["identity"]["jwt_svid"]["audiences"]}}
    return {**demo, "revision": revision, "trust_domains": trust_domains, "identity": identity,
            "providers": providers, "rules": rules,
            "limits": {**demo["limits"], "token_cache_size": TOKEN_CACHE},
            "budgets": [
                {"id": "spender", "workloads": [SPENDER], "window": "month", "tokens": SPENDER_CAP},
                {"id": "global", "workloads": [GLOBAL], "window": "month", "tokens": GLOBAL_CAP, "scope": "global",
                 "on_unavailable": "deny"},
                {"id": "fleet", "workloads": [FLEET], "window": "month", "tokens": 10**12, "scope": "global",
                 "on_unavailable": "deny"},
                {"id": "crowd", "workloads": ["spiffe://example.org/ns/crowd/**"], "per": "workload",
                 "window": "month", "tokens": 10**12, "max_workloads": CROWD_SLOTS},
            ],
            "ledger": {"cluster": "modelgate_ledger", "timeout_ms": 300, "key": {"env": "MODELGATE_LEDGER_KEY"}}}


def policy_json(revision: str, flip: bool) -> str:
    return json.dumps(policy(revision, flip), indent=1)


# --- Envoy, through ECDS ----------------------------------------------------


def soak_config(ports: dict, work: Path) -> tuple[dict, dict]:
    """envoy/envoy.yaml with two stand-in providers behind llm_upstream, the
    soak's clusters and routes, and the wasm filter's configuration taken
    from ECDS. Returns the Envoy config and the wasm filter's typed config."""
    config = envoy_config(ports["listen"], ports["admin"], ports["upstream"][0], work / "audit.log")
    config["node"] = {"id": "soak", "cluster": "modelgate"}
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "llm_upstream")
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    endpoints.append(json.loads(json.dumps(endpoints[0])))
    endpoints[1]["endpoint"]["address"]["socket_address"]["port_value"] = ports["upstream"][1]
    clusters = config["static_resources"]["clusters"]
    clusters += [static_cluster("token_server", ports["tokens"]), static_cluster("bundles", ports["bundles"]),
                 static_cluster("mcp_tools", ports["mcp"])]
    ledger = yaml.safe_load((ROOT / "envoy" / "ledger" / "cluster.yaml").read_text())
    ledger["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"].update(
        address="127.0.0.1", port_value=ports["ledger"])
    clusters.append(ledger)
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    routes.insert(0, {"match": {"prefix": "/fed/"}, "route": {"cluster": "llm_upstream", "prefix_rewrite": "/"}})
    routes.insert(0, {"match": {"prefix": "/tools/"}, "route": {"cluster": "mcp_tools", "prefix_rewrite": "/"}})
    for r in routes:
        if "route" in r:
            r["route"]["timeout"] = ROUTE_TIMEOUT
    wasm_filter(config)["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"] += [
        "MODELGATE_LEDGER_KEY", "MCP_TOKEN", "MCP_SESSION_KEY"]
    return config, through_ecds(config, work / "xds")


# --- what each kind of request must get -------------------------------------

# kind -> (status, reason) per policy ("A", "B"), or for both ("*").
# A kind may end more than one way only where the outcome depends on
# timing the soak does not control (a budget running dry, a fault).
EXPECT = {
    "openai": {"*": {(200, "ok")}},
    "openai_stream": {"*": {(200, "ok")}},
    "anthropic": {"*": {(200, "ok")}},
    "anthropic_stream": {"*": {(200, "ok")}},
    "gemini": {"*": {(200, "ok")}},
    "gemini_stream": {"*": {(200, "ok")}},
    "disputed": {"A": {(200, "ok")}, "B": {(403, "model_not_allowed")}},
    "denied_model": {"*": {(403, "model_not_allowed")}},
    "condition": {"*": {(403, "condition_not_met")}},
    "spender": {"*": {(200, "ok"), (429, "budget_exhausted")}},
    "global": {"*": {(200, "ok"), (429, "budget_exhausted")}},
    "fed": {"*": {(200, "ok")}},
    "fed_fleet": {"*": {(200, "ok")}},
    "cold": {"*": {(200, "ok")}},
    "crowd": {"*": {(200, "ok"), (503, "budget_unavailable")}},
    "expired": {"*": {(401, "invalid_svid")}},
    "forged": {"*": {(401, "invalid_svid")}},
    "missing": {"*": {(401, "missing_identity")}},
    "malformed": {"*": {(400, "invalid_body")}},
    "oversized": {"*": {(413, "body_too_large")}},
    # Side traffic (Python).
    "sdk_openai_stream": {"*": {(200, "ok")}},
    "sdk_anthropic_stream": {"*": {(200, "ok")}},
    "sdk_gemini_stream": {"*": {(200, "ok")}},
    "mcp_initialize": {"*": {(200, "ok")}},
    "mcp_initialized": {"*": {(202, "ok")}},
    "mcp_echo": {"*": {(200, "ok")}},
    "mcp_refused": {"*": {(200, "tool_not_allowed"), (403, "tool_not_allowed")}},
    "slow_body": {"*": {(200, "ok")}},
    "upstream_stall": {"*": {(504, "ok")}},
    "upstream_slow_stream": {"*": {(200, "ok")}},
    "upstream_cut_stream": {"*": {(200, "ok")}},
    "fleet": {"*": {(200, "ok")}},
    "rotating": {"*": {(200, "ok")}},
    "rotating_old": {"*": {(200, "ok")}},
}
# During a fault, the kinds it touches may also end this way (and must
# again end as EXPECT says once it is over).
FAULT_OUTCOMES = {
    "token_endpoint": ({"fed", "fed_fleet"}, {(503, "credential_unavailable")}),
    "redis": ({"global", "fleet"}, {(503, "budget_unavailable")}),
    "ledger": ({"global", "fleet"}, {(503, "budget_unavailable")}),
    "bundle_rotation": ({"rotating", "rotating_old"}, {(401, "invalid_svid")}),
}
# Each store's gauge (summed over the VMs), its bound, whether that bound is
# per worker and configuration, and the size the soak must drive it to: the
# mix offers every store more entries than it keeps. A configuration's
# caches live as long as its last request (a reload gives the new one empty
# caches while the old ones drain), so a per-configuration bound is checked
# against every configuration that may still be live at the sample: the
# current one and those pushed in the LINGER seconds before it.
WORKERS = 2
LINGER = 12.0  # the longest request: a 6 s stall, or a stream, within the 4 s route timeout; plus the sampling
STORES = {
    "svid.cached": (SVID_CACHE, True, SVID_CACHE),
    "svid.token_bytes": (SVID_CACHE * 1024, True, 0),  # the tokens it holds: 1 KiB per entry on average
    "token.cached": (TOKEN_CACHE, True, TOKEN_CACHE),
    "budget.crowd.workloads": (CROWD_SLOTS, False, CROWD_SLOTS),
    "budget.ledger_queued": (4096, True, 0),
}
# The upstream faults the stand-in is steered into (tests/upstream.py).
STEERED = {"upstream_stall": {"x-test-delay": "6"}, "upstream_slow_stream": {"x-test-pace": "0.05"},
           "upstream_cut_stream": {"x-test-cut": "2"}}


JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def svids_in(texts: list) -> list:
    """The JWT-SVIDs in `texts`: any JWT whose audience is the gateway's
    (an exchanged token has none)."""
    found = []
    for text in texts:
        for token in JWT.findall(text or ""):
            try:
                claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
            except ValueError:
                continue
            aud = claims.get("aud") if isinstance(claims, dict) else None
            if svid.AUDIENCE in (aud if isinstance(aud, list) else [aud]):
                found.append(token)
    return found


def chat(model: str, stream: bool = False, **more) -> bytes:
    body = {"model": model, "messages": HI, "max_tokens": MAX_TOKENS, **more}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def wrk_kinds(tokens: dict) -> list[dict]:
    """The wrk mix: kind, weight, method, path, headers, body, and for
    `cold` and `crowd` a pool of bearer tokens to cycle through."""
    bot = {"authorization": f"Bearer {tokens['bot']}", "content-type": "application/json"}

    def as_(token: str) -> dict:
        return {"authorization": f"Bearer {token}", "content-type": "application/json"}

    anthropic = {"x-api-key": tokens["bot"], "anthropic-version": "2023-06-01", "content-type": "application/json"}
    gemini = {"x-goog-api-key": tokens["bot"], "content-type": "application/json"}
    gbody = json.dumps({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
                        "generationConfig": {"maxOutputTokens": MAX_TOKENS}}).encode()
    big = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (1100 * 1024)}]}).encode()
    return [
        dict(kind="openai", weight=14, path="/openai/v1/chat/completions", headers=bot, body=chat("gpt-4o-mini")),
        dict(kind="openai_stream", weight=8, path="/openai/v1/chat/completions", headers=bot,
             body=chat("gpt-4o-mini", True)),
        dict(kind="anthropic", weight=8, path="/anthropic/v1/messages", headers=anthropic,
             body=chat("claude-haiku-4-5")),
        dict(kind="anthropic_stream", weight=5, path="/anthropic/v1/messages", headers=anthropic,
             body=chat("claude-haiku-4-5", True)),
        dict(kind="gemini", weight=6, path="/gemini/v1beta/models/gemini-2.5-flash:generateContent", headers=gemini,
             body=gbody),
        dict(kind="gemini_stream", weight=4, path="/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
             headers=gemini, body=gbody),
        dict(kind="disputed", weight=8, path="/openai/v1/chat/completions", headers=bot, body=chat("gpt-4.1-mini")),
        dict(kind="denied_model", weight=5, path="/openai/v1/chat/completions", headers=bot,
             body=chat("gpt-3.5-turbo")),
        dict(kind="condition", weight=4, path="/openai/v1/chat/completions", headers=as_(tokens["office"]),
             body=chat("gpt-4o-mini")),
        dict(kind="spender", weight=4, path="/openai/v1/chat/completions", headers=as_(tokens["spender"]),
             body=chat("gpt-4o-mini")),
        dict(kind="global", weight=3, path="/openai/v1/chat/completions", headers=as_(tokens["global"]),
             body=chat("gpt-4o-mini")),
        dict(kind="fed", weight=5, path="/fed/v1/chat/completions", headers=bot, body=chat("gpt-4o-mini")),
        dict(kind="fed_fleet", weight=3, path="/fed/v1/chat/completions", headers=bot, body=chat("gpt-4o-mini"),
             pool=tokens["fed_fleet"]),
        dict(kind="cold", weight=6, path="/openai/v1/chat/completions", headers=bot, body=chat("gpt-4o-mini"),
             pool=tokens["cold"]),
        dict(kind="crowd", weight=3, path="/openai/v1/chat/completions", headers=bot, body=chat("gpt-4o-mini"),
             pool=tokens["crowd"]),
        dict(kind="expired", weight=3, path="/openai/v1/chat/completions", headers=as_(tokens["expired"]),
             body=chat("gpt-4o-mini")),
        dict(kind="forged", weight=3, path="/openai/v1/chat/completions", headers=as_(tokens["forged"]),
             body=chat("gpt-4o-mini")),
        dict(kind="missing", weight=2, path="/openai/v1/chat/completions", headers={"content-type": "application/json"},
             body=chat("gpt-4o-mini")),
        dict(kind="malformed", weight=2, path="/openai/v1/chat/completions", headers=bot,
             body=b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}'),
        dict(kind="oversized", weight=1, path="/openai/v1/chat/completions", headers=bot, body=big),
    ]


def lua_string(data: bytes | str) -> str:
    """A Lua string literal holding `data` byte for byte."""
    raw = data.encode() if isinstance(data, str) else data
    return '"' + "".join(f"\\{b}" if b < 32 or b > 126 or b in (34, 92) else chr(b) for b in raw) + '"'


def wrk_script(kinds: list[dict], quota: int, log_dir: Path) -> str:
    """The Lua mix: one connection per thread (so `response` answers the
    request `request` built last); each thread writes `id kind status` per
    response and stops after `quota` responses."""
    out = ["local kinds = {"]
    for k in kinds:
        headers = ", ".join(f"[{lua_string(n)}] = {lua_string(v)}" for n, v in k["headers"].items())
        pool = "{" + ", ".join(lua_string(t) for t in k.get("pool", [])) + "}"
        out.append(f"  {{name = {lua_string(k['kind'])}, weight = {k['weight']}, path = {lua_string(k['path'])}, "
                   f"headers = {{{headers}}}, body = {lua_string(k['body'])}, pool = {pool}}},")
    out.append("}")
    out.append(f"local quota, log_dir = {quota}, {lua_string(str(log_dir))}")
    out.append(r"""
local wheel = {}
for i, k in ipairs(kinds) do for _ = 1, k.weight do wheel[#wheel + 1] = i end end
local n, answered, last, out = 0, 0, nil, nil
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end
function init(args)
  math.randomseed(thread_id * 7919)
  out = io.open(log_dir .. "/wrk-" .. thread_id .. ".tsv", "w")
  for _, k in ipairs(kinds) do
    if #k.pool == 0 then k.request = wrk.format("POST", k.path, k.headers, k.body) end
  end
end
function request()
  n = n + 1
  local k = kinds[wheel[math.random(#wheel)]]
  last = k.name
  if k.request then return k.request end
  local headers = {}
  for name, value in pairs(k.headers) do headers[name] = value end
  headers["authorization"] = "Bearer " .. k.pool[(n * 31 + thread_id) % #k.pool + 1]
  return wrk.format("POST", k.path, headers, k.body)
end
function response(status, headers, body)
  out:write(headers["x-request-id"] or "-", "\t", last, "\t", status, "\n")
  answered = answered + 1
  if answered % 64 == 0 then out:flush() end
  if answered >= quota then
    out:close()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  io.write(string.format("LATENCY p50=%d p90=%d p99=%d max=%d\n", latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
  io.write(string.format("ERRORS connect=%d read=%d write=%d status=%d timeout=%d\n", summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
""")
    return "\n".join(out)


# --- the soak ---------------------------------------------------------------


class Soak:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="modelgate-soak-"))
        (self.work / "xds").mkdir()
        (self.work / "wrk").mkdir()
        self.lock = threading.Lock()
        self.side: list[tuple[str, str, int]] = []  # (request id, kind, status)
        self.unanswered = Counter()  # kind -> requests that got no response by design
        self.problems: list[str] = []
        self.pushed: dict[str, dict] = {}  # revision -> {"digest", "at", "flip", "valid"}
        self.faults: list[dict] = []  # {"name", "kinds", "start", "end", "recovered_s"}
        self.reload_latency: list[float] = []
        self.rss: list[tuple[int, int]] = []  # (requests so far, kB)
        self.store_samples: list[tuple[float, dict]] = []
        self.progress: dict[Path, tuple[int, int]] = {}
        self.done = 0  # wrk's answers so far (the main thread counts)
        self.stop = threading.Event()
        self.procs: list[subprocess.Popen] = []
        self.figures: dict = {}

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 200:
                self.problems.append(text)

    # -- start and stop --

    def start(self) -> None:
        if not WASM.exists():
            sys.exit(f"{WASM} is missing: run `make wasm` first")
        if not shutil.which("wrk"):
            sys.exit("wrk is missing: apt-get install -y wrk")
        server, cli = binaries()
        self.ports = {"listen": free_port(), "admin": free_port(), "upstream": (free_port(), free_port()),
                      "mcp": free_port()}
        for i, port in enumerate(self.ports["upstream"]):
            self.spawn([sys.executable, str(ROOT / "tests" / "upstream.py"), "--port", str(port),
                        "--log", str(self.work / f"upstream-{i}.jsonl")])
        self.spawn([sys.executable, str(ROOT / "tests" / "mcp_server.py"), "--port", str(self.ports["mcp"]), "--json"])
        self.tokens = TokenServer()
        self.tokens.route("/oauth/token", grant="token_exchange", encoding="json",
                          keys={svid.load_key()["kid"]: svid.load_key()}, audience=svid.AUDIENCE, expires_in=2,
                          required={"identity_provider_id": "idp_soak", "service_account_id": None})
        self.bundles = BundleServer()
        self.serve_rotating(ROTATING_KEYS[0])
        self.redis = Redis(server, cli, persist=True)
        self.redis.start()
        self.ledger = Ledger(LEDGER_KEY, self.redis.port).start()
        self.ports.update(tokens=self.tokens.port, bundles=self.bundles.port, ledger=self.ledger.port)
        config, self.wasm = soak_config(self.ports, self.work)
        self.revision = 0
        self.swap(flip=False, wait=False)  # the first policy: Envoy reads it as it starts
        (self.work / "envoy.yaml").write_text(yaml.safe_dump(config))
        self.keys = {**provider_keys(), "MODELGATE_LEDGER_KEY": LEDGER_KEY,
                     "MCP_TOKEN": f"mcp-soak-{secrets.token_hex(8)}", "MCP_SESSION_KEY": secrets.token_hex(32)}
        self.envoy_log = self.work / "envoy.log"
        with self.envoy_log.open("w") as log:
            self.envoy = subprocess.Popen(
                [str(envoy_binary()), "-c", str(self.work / "envoy.yaml"), "--concurrency", "2",
                 "--file-flush-interval-msec", "100", "-l", "warning",
                 "--base-id", str(secrets.randbelow(1 << 20) + 1000)],
                cwd=ROOT, env={**os.environ, **self.keys}, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(self.envoy)
        self.url = f"http://127.0.0.1:{self.ports['listen']}"
        self.admin = f"http://127.0.0.1:{self.ports['admin']}"
        for port in self.ports["upstream"]:
            wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/__health", timeout=1).ok, 15, "stand-in provider")
        wait_until(lambda: requests.get(f"http://127.0.0.1:{self.ports['mcp']}/__health", timeout=1).ok, 20, "MCP server")
        wait_until(lambda: requests.get(f"{self.admin}/ready", timeout=1).text.strip() == "LIVE", 60, "envoy",
                   self.envoy, self.envoy_log)
        # The ledger's cluster is health-checked: wait until a global call passes.
        wait_until(lambda: self.call(svid.mint(FLEET), "fleet")[1] == 200, 30, "the ledger through Envoy")
        self.stats_at_start = self.stats()

    def spawn(self, argv: list) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        self.stop.set()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.ledger.kill()
        self.redis.stop()
        self.tokens.close()
        self.bundles.close()

    def serve_rotating(self, *keys) -> None:
        self.bundles.serve("/rotating", {"keys": [{**k.export_public(as_dict=True), "use": "jwt-svid"} for k in keys]})

    # -- policies --

    def swap(self, flip: bool, valid: bool = True, wait: bool = True) -> bool:
        """Pushes policy A or B (or, `valid=False`, one Envoy must reject)
        under a new revision and, with `wait`, waits for Envoy to apply
        (True, its latency kept) or reject it."""
        self.revision += 1
        revision = f"{'B' if flip else 'A'}-{self.revision}"
        text = policy_json(revision, flip)
        if not valid:
            revision = f"broken-{self.revision}"
            text = json.dumps({**json.loads(text), "revision": revision, "mode": "permissive"})
        digest = hashlib.sha256(text.encode()).hexdigest()
        self.pushed[revision] = {"digest": digest, "at": time.time(), "flip": flip, "valid": valid}
        document = ecds_resource(self.wasm, text, str(self.revision))
        if not wait:
            push(self.work / "xds", document)
            return True
        started = time.monotonic()
        applied = push_and_wait(self.admin, self.work / "xds", document)
        if applied:
            self.reload_latency.append(time.monotonic() - started)
        return applied

    # -- requests from Python --

    def call(self, token: str, kind: str, path="/openai/v1/chat/completions") -> tuple[str, int]:
        """One gpt-4o-mini chat completion with `token`, noted as `kind`."""
        r = requests.post(f"{self.url}{path}", data=chat("gpt-4o-mini"), timeout=15,
                          headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
        self.note(r.headers.get("x-request-id"), kind, r.status_code)
        return r.headers.get("x-request-id"), r.status_code

    def note(self, request_id: str | None, kind: str, status: int) -> None:
        with self.lock:
            self.side.append((request_id or "-", kind, status))

    # -- side traffic --

    def sdk_streams(self) -> None:
        import anthropic
        import openai
        from google import genai
        from google.genai import types

        token = svid.mint(BOT)
        oa = openai.OpenAI(base_url=f"{self.url}/openai/v1", api_key=token, max_retries=0)
        an = anthropic.Anthropic(base_url=f"{self.url}/anthropic", api_key=token, max_retries=0)
        ge = genai.Client(api_key=token, http_options=types.HttpOptions(base_url=f"{self.url}/gemini"))
        while not self.stop.is_set():
            with oa.chat.completions.with_streaming_response.create(
                    model="gpt-4o-mini", messages=HI, max_tokens=MAX_TOKENS, stream=True) as raw:
                text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
                self.note(raw.headers.get("x-request-id"), "sdk_openai_stream", raw.status_code if text else 0)
            with an.messages.with_streaming_response.create(
                    model="claude-haiku-4-5", messages=HI, max_tokens=MAX_TOKENS, stream=True) as raw:
                text = "".join(e.delta.text for e in raw.parse() if e.type == "content_block_delta")
                self.note(raw.headers.get("x-request-id"), "sdk_anthropic_stream", raw.status_code if text else 0)
            text, request_id = "", None
            for chunk in ge.models.generate_content_stream(
                    model="gemini-2.5-flash", contents="Say hello",
                    config=types.GenerateContentConfig(max_output_tokens=MAX_TOKENS)):
                text += chunk.text or ""
                if chunk.sdk_http_response is not None:
                    request_id = (chunk.sdk_http_response.headers or {}).get("x-request-id") or request_id
            self.note(request_id, "sdk_gemini_stream", 200 if text else 0)

    def mcp(self) -> None:
        from mcp_harness import McpServer, Raw
        server = McpServer(name="tools", mode="json", prefix="/tools/", direct_url=f"http://127.0.0.1:{self.ports['mcp']}",
                           token=self.keys["MCP_TOKEN"], gateway_url=self.url)
        while not self.stop.is_set():
            raw = Raw(server, AGENT)
            r = raw.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                           "clientInfo": {"name": "soak", "version": "1"}}, session=False)
            self.note(r.headers.get("x-request-id"), "mcp_initialize", r.status_code)
            if r.status_code != 200:
                continue
            raw.session, raw.version = r.headers.get("mcp-session-id"), "2025-11-25"
            n = raw.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
            self.note(n.headers.get("x-request-id"), "mcp_initialized", n.status_code)
            for i in range(5):
                r = raw.call("echo", {"text": f"soak {i}"})
                self.note(r.headers.get("x-request-id"), "mcp_echo", r.status_code if f"soak {i}" in r.text else 0)
            r = raw.call("delete_repo", {"repo": "acme/x"})
            self.note(r.headers.get("x-request-id"), "mcp_refused", r.status_code)
            self.stop.wait(0.2)

    def upstream_faults(self) -> None:
        """Stalls past the route timeout, slow streams, streams the provider
        cuts; each on its own connection."""
        token = svid.mint(BOT)
        while not self.stop.is_set():
            for kind, headers in STEERED.items():
                stream = kind != "upstream_stall"
                try:
                    r = requests.post(f"{self.url}/openai/v1/chat/completions", data=chat("gpt-4o-mini", stream),
                                      headers={"authorization": f"Bearer {token}", "content-type": "application/json",
                                               **headers}, timeout=15, stream=True)
                    status = r.status_code
                    try:
                        _ = r.content
                    except requests.RequestException:
                        pass  # the cut stream: the status stands
                    finally:
                        r.close()
                except requests.RequestException as e:
                    self.problem(f"{kind}: {e}")
                    continue
                self.note(r.headers.get("x-request-id"), kind, status)

    def raw_clients(self) -> None:
        """Slow bodies (three pieces, 0.3 s apart) and clients that leave
        mid-body: the first answered as any call, the second recorded
        `incomplete` with no response to match."""
        body = chat("gpt-4o-mini")
        while not self.stop.is_set():
            head = chat_head(svid.mint(BOT), len(body))
            with socket.create_connection(("127.0.0.1", self.ports["listen"]), timeout=10) as s:
                s.sendall(head)
                third = len(body) // 3
                for piece in (body[:third], body[third:2 * third], body[2 * third:]):
                    time.sleep(0.3)
                    s.sendall(piece)
                status, request_id = answer_head(s)
                self.note(request_id, "slow_body", status)
            with socket.create_connection(("127.0.0.1", self.ports["listen"]), timeout=10) as s:
                s.sendall(head + body[: len(body) // 2])
                time.sleep(0.1)
            with self.lock:
                self.unanswered["client_abort"] += 1

    # -- reloads and faults --

    def reloads(self, count: int, expected: int) -> None:
        """`count` swaps spread evenly over wrk's `expected` answers,
        alternating B and A; one invalid policy among them."""
        for i in range(count):
            while self.done < expected * (i + 1) / (count + 1):
                if self.stop.wait(0.05):
                    return
            if not self.swap(flip=(i % 2 == 0)):
                self.problem("Envoy rejected a valid policy")
            if i == count // 2 and self.swap(flip=False, valid=False):
                self.problem("the invalid policy was not rejected by Envoy")

    def fault(self, name: str, inject, restore, probe, dwell: float) -> None:
        """Injects a fault for `dwell` seconds under load, restores it, and
        measures how long until `probe()` succeeds again."""
        kinds = FAULT_OUTCOMES[name][0] if name in FAULT_OUTCOMES else set()
        entry = {"name": name, "kinds": sorted(kinds), "start": time.time()}
        inject()
        end = time.monotonic() + dwell
        while time.monotonic() < end and not self.stop.is_set():
            probe()
            time.sleep(0.1)
        restore()
        restored = time.monotonic()
        entry["restored"] = time.time()
        while not probe():
            if time.monotonic() - restored > 30:
                self.problem(f"{name}: not recovered 30 s after the fault ended")
                break
            time.sleep(0.02)
        entry["recovered_s"] = round(time.monotonic() - restored, 3)
        entry["end"] = time.time()
        with self.lock:
            self.faults.append(entry)

    def faults_run(self, dwell: float) -> None:
        fed = lambda: self.call(svid.mint(BOT), "fed", path="/fed/v1/chat/completions")[1] == 200  # noqa: E731
        self.fault("token_endpoint", self.tokens.down, self.tokens.up, fed, dwell)
        self.faults[-1]["name"] = "token_endpoint_down"
        for mode in ("reset_before_headers", "slow", "garbage_json", "cut_after_headers"):
            if self.stop.is_set():
                return
            self.fault("token_endpoint", lambda m=mode: self.tokens.route("/oauth/token", mode=m, delay=1.5),
                       lambda: self.tokens.route("/oauth/token", mode="ok"), fed, dwell)
            self.faults[-1]["name"] = f"token_endpoint_{mode}"
        # The bundle endpoint down: the last good bundle keeps serving.
        old_token = svid.mint(ROTATING, key=ROTATING_KEYS[0])
        ok = lambda: self.call(old_token, "rotating")[1] == 200  # noqa: E731
        self.fault("bundle_down", lambda: self.bundles.serve("/rotating", status=503, body=b"down"),
                   lambda: self.serve_rotating(ROTATING_KEYS[0]), ok, dwell)
        for _ in range(5):
            if self.call(old_token, "rotating")[1] != 200:
                self.problem("a bundle endpoint that is down refused SVIDs of the last good bundle")
        # Rotation: the new key takes over; the old SVID (verified and cached
        # just now) must be refused once the new bundle is in place.
        new_token = svid.mint(ROTATING, key=ROTATING_KEYS[1])
        entry = {"name": "bundle_rotation", "kinds": ["rotating", "rotating_old"], "start": time.time()}
        self.serve_rotating(ROTATING_KEYS[1])
        started = time.monotonic()
        streak = 0
        while streak < 10 and time.monotonic() - started < 30:
            _, s = self.call(new_token, "rotating")
            self.call(old_token, "rotating_old")
            streak = streak + 1 if s == 200 else 0
        entry["recovered_s"] = round(time.monotonic() - started, 3)
        entry["restored"] = entry["end"] = time.time()
        with self.lock:
            self.faults.append(entry)
        for _ in range(10):
            request_id, status = self.call(old_token, "rotating_old_after")
            if status != 401:
                self.problem(f"an SVID of the rotated-out key was accepted after the rotation ({request_id})")
        # Redis, then the ledger, down and back.
        fleet = lambda: self.call(svid.mint(FLEET), "fleet")[1] == 200  # noqa: E731
        self.fault("redis", self.redis.stop, self.redis.start, fleet, dwell)
        self.fault("ledger", self.ledger.kill, self.ledger.start, fleet, dwell)

    # -- sampling --

    def stats(self) -> dict:
        text = requests.get(f"{self.admin}/stats", timeout=10).text
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def sample(self) -> None:
        """Every half second: Envoy's RSS against requests served, and the
        largest size each store's gauge reached."""
        while not self.stop.wait(0.5):
            try:
                stats = self.stats()
                rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{self.envoy.pid}/status").read_text())[1])
            except (requests.RequestException, OSError, TypeError):
                continue
            with self.lock:
                self.rss.append((stats.get("http.llm_egress.downstream_rq_completed", 0), rss))
                self.store_samples.append((time.time(), {name: stats.get(f"wasmcustom.modelgate.{name}")
                                                         for name in STORES}))

    # -- the run --

    def run(self) -> dict:
        args = self.args
        tokens = {"bot": svid.mint(BOT), "office": svid.mint(OFFICE), "spender": svid.mint(SPENDER),
                  "global": svid.mint(GLOBAL),
                  "expired": svid.mint(BOT, iat=int(time.time()) - 7200, ttl=600),
                  "forged": svid.mint(BOT, key=FORGED_KEY),
                  "cold": [svid.mint(BOT) for _ in range(COLD_POOL)],
                  "crowd": [svid.mint(w) for w in CROWD],
                  "fed_fleet": [svid.mint(w) for w in FED_FLEET]}
        quota = max(1, args.requests // args.connections)
        (self.work / "mix.lua").write_text(wrk_script(wrk_kinds(tokens), quota, self.work / "wrk"))
        threads = [threading.Thread(target=t, daemon=True) for t in (
            self.sample, self.sdk_streams, self.mcp, self.upstream_faults, self.raw_clients)]
        for t in threads:
            t.start()
        started = time.monotonic()
        wrk = subprocess.Popen(["wrk", "-t", str(args.connections), "-c", str(args.connections), "-d", "3600s",
                                "--timeout", "20s", "--latency", "-s", str(self.work / "mix.lua"), self.url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(wrk)
        expected = quota * args.connections
        # Reloads spread over the run by wrk's progress; faults one after
        # another while it runs, each held for a fortieth of the run's
        # expected length (estimated from the first seconds' rate), 1 to 3 s.
        time.sleep(3)
        self.done = self.answered()
        span = expected / max(100.0, self.done / 3)
        control = [threading.Thread(target=self.reloads, args=(args.reloads, expected), daemon=True)]
        if args.faults:
            control.append(threading.Thread(target=self.faults_run, args=(min(3.0, max(1.0, span / 40)),), daemon=True))
        for t in control:
            t.start()
        while self.done < expected and wrk.poll() is None:
            if time.monotonic() - started > args.max_seconds:
                self.problem(f"wrk had {self.done} of {expected} answers after {args.max_seconds} s")
                break
            time.sleep(0.2)
            self.done = self.answered()
        for t in control:
            t.join(timeout=120)
        wrk.send_signal(signal.SIGINT)
        output, _ = wrk.communicate(timeout=60)
        elapsed = time.monotonic() - started
        self.stop.set()
        for t in threads:
            t.join(timeout=30)
        time.sleep(1.5)  # the last records flushed (--file-flush-interval-msec 100)
        self.figures.update(wrk_output=output, elapsed_s=round(elapsed, 1))
        return self.score()

    def answered(self) -> int:
        """wrk's answers so far (read on from where the last call stopped)."""
        for f in (self.work / "wrk").glob("*.tsv"):
            offset, lines = self.progress.get(f, (0, 0))
            with f.open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
            self.progress[f] = (offset + len(data), lines + data.count(b"\n"))
        return sum(lines for _, lines in self.progress.values())

    # -- the scoreboard --

    def score(self) -> dict:
        schema = jsonschema_rs.Draft202012Validator(json.loads((ROOT / "docs" / "audit.schema.json").read_text()))
        sent = []
        for f in sorted((self.work / "wrk").glob("*.tsv")):
            for line in f.read_text().splitlines():
                request_id, kind, status = line.split("\t")
                sent.append((request_id, kind, int(status)))
        wrk_count = len(sent)
        sent += self.side
        records = [json.loads(line) for line in (self.work / "audit.log").read_text().splitlines() if line.strip()]
        by_id = defaultdict(list)
        for r in records:
            by_id[r.get("request_id")].append(r)
        mix = Counter(kind for _, kind, _ in sent)
        decided = self.decided = Counter()
        live = {rev: p for rev, p in self.pushed.items() if p["valid"]}
        order = sorted(((p["at"], rev) for rev, p in live.items()))
        stale = 0
        lag = [0.0]  # the longest an old policy went on deciding requests that started after a swap
        fallback = [r for r in records if "chain" not in r]
        for r in fallback:
            self.problem(f"a request Envoy refused before modelgate decided: {json.dumps(r)[:300]}")
        invalid = 0
        for r in records:
            if not schema.is_valid(r):
                invalid += 1
                if invalid < 5:
                    self.problem(f"a record fails the schema: {next(schema.iter_errors(r))}"[:400])
            policy_ref = r.get("policy") or {}
            pushed = live.get(policy_ref.get("revision"))
            if "chain" in r and (pushed is None or pushed["digest"] != policy_ref.get("digest")):
                self.problem(f"a record names a policy that was never live: {policy_ref}")
            elif "chain" in r and not self.live_when_started(policy_ref["revision"], r["time"], order, lag):
                stale += 1
                if stale < 5:
                    self.problem(f"a request was decided by a policy that was not live when it started: "
                                 f"{r['request_id']} {policy_ref['revision']} at {r['time']}")
        allowed_ids = set()
        matched = 0
        for request_id, kind, status in sent:
            found = by_id.get(request_id, [])
            if len(found) != 1:
                self.problem(f"{kind} {request_id}: {len(found)} records")
                continue
            matched += 1
            r = found[0]
            if r.get("status") != status and not (kind == "upstream_cut_stream"):
                self.problem(f"{kind} {request_id}: the client got {status}, the record says {r.get('status')}")
            revision = (r.get("policy") or {}).get("revision") or ""
            rules = EXPECT.get(kind.removesuffix("_after"), {"*": set()})
            allowed = rules.get(revision[:1]) or rules.get("*", set())
            if kind == "rotating_old_after":
                allowed = {(401, "invalid_svid")}
            outcome = (status, r.get("reason"))
            if outcome not in allowed and not self.in_fault(kind, outcome, r):
                self.problem(f"{kind} {request_id} under {revision}: got {outcome}, must be one of {sorted(allowed)}")
            decided[(kind, status, r.get("reason"))] += 1
            if r.get("decision") == "allow" and r.get("upstream") is not None and r.get("provider") != "tools":
                allowed_ids.add(request_id)
        known = {request_id for request_id, _, _ in sent}
        strays = [r for r in records if r.get("request_id") not in known]
        stray_reasons = Counter((r.get("reason"), r.get("status")) for r in strays)
        if len(strays) != sum(self.unanswered.values()):
            self.problem(f"{len(strays)} records of requests the soak did not count: {dict(stray_reasons)}; "
                         f"expected {dict(self.unanswered)}")
        for r in strays:
            if r.get("reason") != "incomplete" or r.get("upstream") is not None:
                self.problem(f"a client that left mid-body: {json.dumps(r)[:300]}")
        self.check_upstream(records, allowed_ids)
        self.check_budgets(records)
        verify = subprocess.run([str(CLI), "audit", "verify",
                                 str(self.work / "audit.log")], capture_output=True, text=True)
        if verify.returncode != 0:
            self.problem(f"modelgate audit verify: {verify.stdout[-600:]} {verify.stderr[-600:]}")
        end = self.stats()
        self.check_stats(end)
        latency = re.search(r"LATENCY p50=(\d+) p90=(\d+) p99=(\d+) max=(\d+)", self.figures["wrk_output"])
        errors = re.search(r"ERRORS connect=(\d+) read=(\d+) write=(\d+) status=(\d+) timeout=(\d+)",
                           self.figures["wrk_output"])
        if errors and any(int(errors[i]) for i in (1, 2, 3, 5)):
            self.problem(f"wrk socket errors: {errors[0]}")
        rss = self.rss_figures()
        chain_ok = verify.returncode == 0
        result = {
            "requests": len(sent) + sum(self.unanswered.values()),
            "wrk_requests": wrk_count,
            "side_requests": len(self.side) + sum(self.unanswered.values()),
            "records": len(records),
            "matched": matched,
            "schema_invalid": invalid,
            "mix": dict(sorted(mix.items(), key=lambda kv: -kv[1])),
            "unanswered": dict(self.unanswered),
            "decisions": {f"{k} {s} {r}": n for (k, s, r), n in sorted(decided.items())},
            "chain_verified": chain_ok,
            "verify": verify.stdout.strip().splitlines()[-1:] if verify.stdout else [],
            "elapsed_s": self.figures["elapsed_s"],
            "rate_per_s": round(len(sent) / self.figures["elapsed_s"]),
            "latency_ms": {k: round(int(latency[i]) / 1000, 2) for i, k in
                           enumerate(("p50", "p90", "p99", "max"), 1)} if latency else None,
            "reloads": sum(1 for p in self.pushed.values() if p["valid"]) - 1,
            "rejected_pushes": sum(1 for p in self.pushed.values() if not p["valid"]),
            "reload_latency_ms": {"median": round(sorted(self.reload_latency)[len(self.reload_latency) // 2] * 1000),
                                  "max": round(max(self.reload_latency) * 1000)} if self.reload_latency else None,
            # Requests that reached a provider or the MCP server without an
            # allow from the policy in force: the fail-open window, in
            # requests. It must be 0.
            "fail_open_requests": self.figures.get("fail_open", 0),
            "decided_by_a_policy_not_live": stale,
            # After a swap, the old policy still decides requests that
            # started before Envoy applied the new one: the longest such
            # overlap (never a request the old policy did not allow itself).
            "old_policy_overlap_ms": round(lag[0] * 1000),
            "mcp_server_requests": self.figures.get("mcp_server_requests"),
            "faults": [{k: f[k] for k in ("name", "recovered_s")} for f in self.faults],
            "rss": rss,
            "stores": self.figures.get("stores"),
            "budgets": self.figures.get("budgets"),
            "vms": self.figures.get("vms"),
            "problems": self.problems,
        }
        return result

    @staticmethod
    def live_when_started(revision: str, started: str, order: list, lag: list) -> bool:
        """Whether `revision` was the live policy when a request started at
        `started` (the record's time): the last one pushed before it, or the
        one before that within a second of the push (a swap takes Envoy
        20–160 ms to apply, and the record's time is to the millisecond).
        `lag[0]` keeps the longest such overlap seen."""
        at = datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        k = bisect.bisect_right(order, (at, "\uffff")) - 1
        if k >= 0 and order[k][1] == revision:
            return True
        if k >= 1 and order[k - 1][1] == revision and at - order[k][0] <= 1.0:
            lag[0] = max(lag[0], at - order[k][0])
            return True
        return k < 0 and order and order[0][1] == revision  # before the first push was stamped

    def in_fault(self, kind: str, outcome: tuple, record: dict) -> bool:
        """Whether `outcome` is one a fault running when the request started
        allows for its kind (with a second's slack either side)."""
        at = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
        for f in self.faults:
            name = "token_endpoint" if f["name"].startswith("token_endpoint") else f["name"]
            kinds, outcomes = FAULT_OUTCOMES.get(name, (set(), set()))
            if kind in kinds and outcome in outcomes and f["start"] - 1 <= at <= f["end"] + 1:
                return True
        return False

    def check_upstream(self, records: list, allowed_ids: set) -> None:
        """What reached the providers and the MCP server: only allowed
        requests, each once, each with the gateway's credential and no
        caller's SVID in any header or the path, the model its record
        decided; an exchanged token only under the policy it was fetched
        for."""
        by_id = {r["request_id"]: r for r in records if r.get("request_id")}
        seen = Counter()
        expected_keys = {"openai": ("authorization", f"Bearer {self.keys['OPENAI_API_KEY']}"),
                         "anthropic": ("x-api-key", self.keys["ANTHROPIC_API_KEY"]),
                         "gemini": ("x-goog-api-key", self.keys["GEMINI_API_KEY"])}
        fail_open = 0
        for i in range(2):
            for line in (self.work / f"upstream-{i}.jsonl").read_text().splitlines():
                entry = json.loads(line)
                request_id = entry["id"]
                r = by_id.get(request_id)
                if "model" in entry:  # the body's line
                    if r is not None and r.get("provider") in ("openai", "anthropic", "fed") \
                            and entry["model"] != r.get("model"):
                        self.problem(f"{request_id}: the provider read model {entry['model']!r}, "
                                     f"the record decided {r.get('model')!r}")
                    continue
                seen[request_id] += 1
                if r is None or r.get("decision") != "allow":
                    fail_open += 1
                    self.problem(f"a request reached the provider without an allow: {line[:300]}")
                    continue
                creds = entry["credentials"]
                if svids_in([entry["path"], *(v for vs in creds.values() for v in vs)]):
                    self.problem(f"a caller's SVID reached the provider: {line[:300]}")
                if r.get("provider") == "fed":
                    [bearer] = creds.get("authorization", ["?"])
                    try:
                        claims = self.tokens.verify_issued(bearer.removeprefix("Bearer "))
                    except Exception as e:  # noqa: BLE001
                        self.problem(f"an exchanged token that does not verify: {e}")
                        continue
                    flip = (r.get("policy") or {}).get("revision", "").startswith("B")
                    if claims.get("account") != ("sa_B" if flip else "sa_A"):
                        self.problem(f"a token exchanged under one policy served another: {request_id} "
                                     f"{r['policy']['revision']} {claims.get('account')}")
                elif r.get("provider") in expected_keys:
                    header, value = expected_keys[r["provider"]]
                    if creds.get(header) != [value]:
                        self.problem(f"{request_id}: {header} is not the provider key")
                else:
                    self.problem(f"{request_id}: provider {r.get('provider')!r} has no credential check here")
        for request_id in allowed_ids:
            if seen[request_id] != 1:
                self.problem(f"an allowed request reached the provider {seen[request_id]} times: {request_id}")
        mcp_seen = requests.get(f"http://127.0.0.1:{self.ports['mcp']}/__requests", timeout=30).json()
        for entry in mcp_seen:
            headers = {}
            for name, value in entry["headers"]:
                headers.setdefault(name.lower(), []).append(value)
            [request_id] = headers.get("x-request-id", [None])
            r = by_id.get(request_id)
            if r is None or r.get("decision") != "allow" or r.get("provider") != "tools":
                fail_open += 1
                self.problem(f"a request reached the MCP server without an allow: {request_id} {entry['method']}")
            if headers.get("authorization") != [f"Bearer {self.keys['MCP_TOKEN']}"]:
                self.problem(f"{request_id}: the MCP server did not get the gateway's key")
            if svids_in([entry["path"], *(v for vs in headers.values() for v in vs)]):
                self.problem(f"a caller's SVID reached the MCP server: {request_id}")
        self.figures["fail_open"] = fail_open
        self.figures["mcp_server_requests"] = len(mcp_seen)

    def check_budgets(self, records: list) -> None:
        """No budget spent past its cap: the charges the records hold, and the
        counters themselves."""
        for budget, cap in (("spender", SPENDER_CAP), ("global", GLOBAL_CAP)):
            charged = sum((b.get("charged") or {}).get("tokens") or 0 for r in records for b in r.get("budgets", [])
                          if b["id"] == budget)
            admitted = sum(1 for r in records for b in r.get("budgets", []) if b["id"] == budget and r["status"] == 200)
            refused = sum(n for (kind, _, reason), n in self.decided.items()
                          if kind == budget and reason == "budget_exhausted")
            self.figures.setdefault("budgets", {})[budget] = {"cap": cap, "charged": charged, "admitted": admitted,
                                                              "refused": refused}
            if charged > cap:
                self.problem(f"budget {budget}: {charged} tokens charged, cap {cap}")
            if refused == 0:
                self.problem(f"budget {budget} never ran dry: raise the load or lower its cap")
        # The ledger's own counters: every settle arrived (nothing held once
        # the requests are over) and they add up to what the records charged.
        for budget in ("global", "fleet"):
            charged = sum((b.get("charged") or {}).get("tokens") or 0 for r in records for b in r.get("budgets", [])
                          if b["id"] == budget)
            deadline = time.monotonic() + 20
            while True:
                used, held = self.ledger_counters(budget)
                if held == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.figures["budgets"].setdefault(budget, {}).update(ledger_used=used, ledger_held=held,
                                                                   records_charged=charged)
            if held != 0:
                self.problem(f"budget {budget}: the ledger still holds {held} tokens after every request ended")
            if used != charged:
                self.problem(f"budget {budget}: the ledger counted {used} tokens, the records charged {charged}")

    def ledger_counters(self, budget: str) -> tuple[int, int]:
        """The ledger's used and held tokens of `budget`, over its keys in Redis."""
        cli = [self.redis.cli, "-p", str(self.redis.port), "--raw"]
        keys = subprocess.run([*cli, "--scan", "--pattern", f"mg:{{{budget}/*}}:b"], capture_output=True,
                              text=True, timeout=10).stdout.split()
        used = held = 0
        for key in keys:
            counters = self.redis.hgetall(key)
            used += int(counters.get("used_tokens", 0))
            held += int(counters.get("held_tokens", 0))
        return used, held

    def check_stats(self, end: dict) -> None:
        start = self.stats_at_start
        v8 = "wasm.envoy.wasm.runtime.v8"
        vms = {"active_start": start.get(f"{v8}.active"), "active_end": end.get(f"{v8}.active"),
               "created": end.get(f"{v8}.created", 0) - start.get(f"{v8}.created", 0)}
        self.figures["vms"] = vms
        if vms["active_end"] != vms["active_start"]:
            self.problem(f"wasm VMs active: {vms['active_start']} at the start, {vms['active_end']} at the end")
        for name, value in end.items():
            if re.search(r"(vm_reload_failure|vm_reload_backoff|wasm\..*\.vm_reload)$", name) and value:
                self.problem(f"{name}: {value}")
        ecds = "extension_config_discovery.http_filter.modelgate"
        valid = sum(1 for p in self.pushed.values() if p["valid"])
        if end.get(f"{ecds}.update_success", 0) != valid:
            self.problem(f"ECDS accepted {end.get(f'{ecds}.update_success')} of {valid} valid policies")
        pushes = sorted(p["at"] for p in self.pushed.values() if p["valid"])
        figures = {}
        for name, (bound, per_config, filled) in STORES.items():
            seen = [(at, values[name]) for at, values in self.store_samples if values.get(name) is not None]
            if not seen:
                self.problem(f"the gauge modelgate.{name} never showed")
                continue
            for at, value in seen:
                live = 1 + sum(1 for p in pushes[1:] if at - LINGER <= p <= at) if per_config else 1
                limit = bound * (WORKERS * live if per_config else 1)
                if value > limit:
                    self.problem(f"modelgate.{name} was {value}, past its bound {limit} ({live} live configurations)")
            top = max(value for _, value in seen)
            if top < filled:
                self.problem(f"modelgate.{name} only reached {top}: the soak did not drive it to its bound")
            figures[name] = {"max": top, "bound": bound, "per": "worker and configuration" if per_config else "gateway"}
        self.figures["stores"] = figures

    def rss_figures(self) -> dict:
        samples = self.rss
        if len(samples) < 4:
            return {"samples": len(samples)}
        total = samples[-1][0]
        half = next(kb for n, kb in samples if n >= total / 2)
        last = samples[-1][1]
        growth = (last - half) / half * 100
        curve = [(n, kb) for i, (n, kb) in enumerate(samples) if i % max(1, len(samples) // 12) == 0] + [samples[-1]]
        if growth > self.args.rss_growth:
            self.problem(f"Envoy RSS grew {growth:.2f}% over the second half (limit {self.args.rss_growth}%)")
        return {"start_kb": samples[0][1], "half_kb": half, "end_kb": last, "second_half_growth_pct": round(growth, 2),
                "curve": curve}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000, help="wrk requests (side traffic comes on top)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--no-faults", dest="faults", action="store_false")
    parser.add_argument("--rss-growth", type=float, default=2.0, help="percent allowed over the second half")
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--short", action="store_true", help="CI: 12,000 requests, 6 reloads, RSS growth 10%%")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.short:
        args.requests, args.reloads, args.rss_growth = 12_000, 6, 10.0
    soak = Soak(args)
    try:
        soak.start()
        result = soak.run()
    finally:
        soak.close()
    result["work"] = str(soak.work)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if not args.keep and not result["problems"]:
        shutil.rmtree(soak.work, ignore_errors=True)
    if result["problems"]:
        print(f"\nSOAK FAILED: {len(result['problems'])} problems (work dir {soak.work})", file=sys.stderr)
        return 1
    print("\nsoak passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
