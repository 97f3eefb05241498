"""Side by side, in one run: bare Envoy, Envoy's native `jwt_authn` + `rbac`
on the `sub` claim (the C++ anchor, header-only), and modelgate doing all it
does in production (the hold, the JWT-SVID, the body's model, the cap, the
key swap, the audit record).

The empty setup is the floor any wasm filter pays: the same VM and SDK
with a filter that does nothing (bench/empty). Each setup is the same
Envoy 1.40 with two listeners: the gateway, and a
stand-in provider that reads the whole body (Envoy's buffer filter) and
answers from memory, so the provider is never the bottleneck and every
setup moves every body byte. wrk drives chat completions of 1 KiB, 64 KiB
and 1 MiB with one token (warm), and 1 KiB with a new valid token on every
request from a pool larger than the verified-SVID cache (cold, ES256 and
RS256). A last phase sends 100k requests to a 2-worker Envoy and compares
resident memory. Two more setups price budgets (docs/budgets.md): the
same modelgate with a token budget in Envoy's shared data (`scope:
gateway`), and with one kept by the ledger service and a real redis-server
(`scope: global`), warm 1 KiB, as ratios to modelgate without a budget.
The last pair prices MCP (docs/mcp.md): a 1 KiB `tools/call` to an MCP
server, its `repo` argument held to a pattern, as a ratio to the warm
1 KiB chat completion. Machines are noisy: compare ratios from one run.

    python tests/bench.py [--duration 10] [--connections 16] [--only budgets|mcp] [--json out.json]
"""

import argparse
import copy
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

import svid
from harness import ROOT, envoy_binary, envoy_config, free_port, plugin_configuration, provider_keys, wait_until

BOT = "spiffe://example.org/ns/support/sa/bot"
REPLY = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})
# What the stand-in MCP server answers every `tools/call`.
TOOL_REPLY = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {
    "content": [{"type": "text", "text": "1 issue: flaky login test"}], "isError": False}})
JSON_ANSWER = {"header": {"key": "content-type", "value": "application/json"},
               "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
SIZES = {"1 KiB": 1024, "64 KiB": 64 * 1024, "1 MiB": 1024 * 1024 - 4096}
EMPTY_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "empty_filter.wasm"
LEDGER_KEY = "bench-ledger-key-" + "k" * 32
# Room for every request of any run: the budget is counted, never exhausted.
BUDGET = {"id": "bench", "workloads": [BOT], "window": "day", "tokens": 10**15}
MCP_PROVIDER = {"name": "tools", "api": "mcp", "match": {"path_prefix": "/tools/"},
                "credential": {"type": "api_key", "env": "MCP_TOKEN"}, "session_key": {"env": "MCP_SESSION_KEY"}}
# docs/mcp.md's worked example, for the bot: search_issues only in acme's repositories.
MCP_RULES = [{"id": "bench-tools", "effect": "allow", "workloads": [BOT], "providers": ["tools"],
              "tools": ["search_issues", "get_issue"], "arguments": {"search_issues": {"repo": ["acme/*"]}}},
             {"id": "never-delete", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["tools"],
              "tools": ["delete_*"]}]
MODERN = "2026-07-28"


def body_of(size: int) -> bytes:
    """A chat completion of about `size` bytes that the bot may send."""
    filler = "x" * max(0, size - 120)
    return json.dumps({"model": "gpt-4o-mini", "max_completion_tokens": 16,
                       "messages": [{"role": "user", "content": filler}]}).encode()


def tool_call_of(size: int, repo: str = "acme/api") -> tuple[bytes, dict]:
    """A stateless (2026-07-28) `tools/call` of `size` bytes, its `query`
    padded, and the routing headers that go with it."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "modelgate-bench", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}

    def message(query):
        return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "search_issues", "arguments": {"repo": repo, "query": query}, "_meta": meta}}).encode()
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": MODERN,
               "mcp-method": "tools/call", "mcp-name": "search_issues", "mcp-param-repo": repo}
    return message("x" * max(0, size - len(message("")))), headers


def hcm(config):
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def provider_listener(port: int) -> dict:
    return {"name": "provider", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "per_connection_buffer_limit_bytes": 16777216,
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "provider", "codec_type": "AUTO",
                "route_config": {"virtual_hosts": [{"name": "p", "domains": ["*"], "routes": [
                    {"match": {"path": "/mcp"}, "direct_response": {"status": 200, "body": {"inline_string": TOOL_REPLY}},
                     "response_headers_to_add": [JSON_ANSWER]},
                    # JSON, as a provider answers: modelgate reads the usage from it.
                    {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": REPLY}},
                     "response_headers_to_add": [JSON_ANSWER]}]}]},
                "http_filters": [
                    {"name": "envoy.filters.http.buffer", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer", "max_request_bytes": 16777216}},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}


def native_filters(jwks: dict) -> list:
    """jwt_authn (local JWKS, its JWT cache on) and rbac allowing the bot."""
    return [
        {"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"spire": {"audiences": [svid.AUDIENCE], "local_jwks": {"inline_string": json.dumps(jwks)},
                                    "forward": False, "payload_in_metadata": "jwt_payload",
                                    "jwt_cache_config": {"jwt_cache_size": 4096}}},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "spire"}}]}},
        {"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {"bot": {
                "permissions": [{"any": True}],
                "principals": [{"metadata": {"filter": "envoy.filters.http.jwt_authn",
                                             "path": [{"key": "jwt_payload"}, {"key": "sub"}],
                                             "value": {"string_match": {"exact": BOT}}}}]}}}}},
    ]


def ledger_cluster(port: int) -> dict:
    return {"name": "modelgate_ledger", "type": "STATIC", "connect_timeout": "0.25s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "modelgate_ledger", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def allow_env(config: dict, key: str) -> None:
    """Lets the modelgate VM read `key` from Envoy's environment."""
    wasm_config = next(f for f in hcm(config)["http_filters"] if f["name"] == "envoy.filters.http.wasm")
    wasm_config["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"].append(key)


def config_for(setup: str, listen: int, admin: int, provider: int, work: Path, ledger_port: int = 0) -> dict:
    config = envoy_config(listen, admin, provider, work / f"audit-{setup}.log")
    if setup in ("budget", "global"):
        value = plugin_configuration(config)
        budget = {**BUDGET, "scope": "gateway" if setup == "budget" else "global"}
        patch = {"budgets": [budget]}
        if setup == "global":
            patch["ledger"] = {"cluster": "modelgate_ledger", "timeout_ms": 500, "key": {"env": "MODELGATE_LEDGER_KEY"}}
            config["static_resources"]["clusters"].append(ledger_cluster(ledger_port))
            allow_env(config, "MODELGATE_LEDGER_KEY")
        value["value"] = json.dumps({**json.loads(value["value"]), **patch})
    if setup == "nodigest":
        # modelgate with audit.prompt: none (no SHA-256 of the body).
        value = plugin_configuration(config)
        value["value"] = json.dumps({**json.loads(value["value"]), "audit": {"prompt": "none"}})
    if setup == "minted":
        # modelgate signing a JWT per request (ES256) instead of the api key.
        value = plugin_configuration(config)
        policy = json.loads(value["value"])
        openai = next(p for p in policy["providers"] if p["name"] == "openai")
        openai["credential"] = {"type": "minted_jwt", "env": "MODELGATE_SIGNING_KEY", "issuer": "https://bench",
                                "audience": "https://provider"}
        value["value"] = json.dumps(policy)
        allow_env(config, "MODELGATE_SIGNING_KEY")
    if setup == "mcp":
        # modelgate with an MCP server behind /tools/ (the stand-in provider).
        value = plugin_configuration(config)
        policy = json.loads(value["value"])
        value["value"] = json.dumps({**policy, "providers": policy["providers"] + [MCP_PROVIDER],
                                     "rules": policy["rules"] + MCP_RULES})
        allow_env(config, "MCP_TOKEN")
        allow_env(config, "MCP_SESSION_KEY")
    h = hcm(config)
    prefixes = ("/openai/", "/tools/") if setup == "mcp" else ("/openai/",)
    h["route_config"]["virtual_hosts"][0]["routes"] = [
        {"match": {"prefix": p}, "route": {"cluster": "llm_upstream", "prefix_rewrite": "/", "timeout": "60s"}}
        for p in prefixes]
    config["static_resources"]["listeners"].append(provider_listener(provider))
    wasm = next(f for f in h["http_filters"] if f["name"] == "envoy.filters.http.wasm")
    policy = json.loads(plugin_configuration(config)["value"])
    router = h["http_filters"][-1]
    released = next(f for f in h["http_filters"] if f["name"] == "modelgate.released")
    if setup == "bare":
        h["http_filters"] = [router]
        h.pop("access_log")
    elif setup == "empty":
        # The floor: the same VM and SDK with a filter that does nothing.
        wasm = copy.deepcopy(wasm)
        vm = wasm["typed_config"]["config"]["vm_config"]
        vm["code"]["local"]["filename"] = str(EMPTY_WASM)
        vm["vm_id"] = "empty"
        h["http_filters"] = [wasm, router]
        h.pop("access_log")
    elif setup == "native":
        h["http_filters"] = [*native_filters(policy["trust_domains"][0]["jwt_bundle"]), router]
        h.pop("access_log")
    else:
        h["http_filters"] = [wasm, released, router]
    return config


class Envoy:
    def __init__(self, setup: str, work: Path, concurrency: int, ledger_port: int = 0):
        self.listen, self.admin, provider = free_port(), free_port(), free_port()
        path = work / f"envoy-{setup}-{concurrency}.yaml"
        path.write_text(yaml.safe_dump(config_for(setup, self.listen, self.admin, provider, work, ledger_port)))
        self.log = work / f"envoy-{setup}-{concurrency}.log"
        env = {**os.environ, **provider_keys(), "OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-bench",
               "MODELGATE_LEDGER_KEY": LEDGER_KEY, "MCP_TOKEN": "mcp-bench", "MCP_SESSION_KEY": secrets.token_hex(32),
               "MODELGATE_SIGNING_KEY": svid.new_ec_key("bench").export_to_pem(private_key=True, password=None).decode()}
        self.proc = subprocess.Popen([str(envoy_binary()), "-c", str(path), "-l", "warning", "--concurrency", str(concurrency),
                                      "--base-id", str(secrets.randbelow(1 << 20) + 3000)],
                                     cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        wait_until(lambda: requests.get(f"http://127.0.0.1:{self.admin}/ready", timeout=1).ok, 30, "envoy", self.proc, self.log)
        self.url = f"http://127.0.0.1:{self.listen}/openai/v1/chat/completions"

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


LUA = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local body = io.open("%(body)s", "rb"):read("*a")
local headers = {["content-type"] = "application/json"%(headers)s}
local counter = 0
local thread_id = 0
local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
function init(args)
  counter = thread_id * math.floor(#tokens / 2)
end
function request()
  counter = counter + 1
  headers["authorization"] = "Bearer " .. tokens[(counter %% #tokens) + 1]
  return wrk.format("POST", nil, headers, body)
end
"""


def wrk(url: str, tokens: Path, body: Path, args, work: Path, headers: dict | None = None) -> dict:
    script = work / "bench.lua"
    extra = "".join(f', ["{k}"] = {json.dumps(v)}' for k, v in (headers or {}).items())
    script.write_text(LUA % {"tokens": tokens, "body": body, "headers": extra})
    out = subprocess.run(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")

    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": ms("50"), "p99": ms("99"), "requests": total}


def mint_pool(n: int, key, alg: str) -> list[str]:
    return [svid.mint(BOT, key=key, alg=alg, ttl=7200, claims_extra={"jti": f"{alg}-{i}-{secrets.token_hex(4)}"}) for i in range(n)]


class Ledger:
    """A redis-server and the ledger service in front of it (scope: global)."""

    def __init__(self, work: Path):
        binary = ROOT / "target" / "release" / "modelgate-ledger"
        if not binary.exists():
            subprocess.run(["cargo", "build", "--release", "-q", "-p", "modelgate-ledger"], cwd=ROOT, check=True)
        redis_port, self.port = free_port(), free_port()
        self.redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
                                       "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        env = {**os.environ, "MODELGATE_LEDGER_KEY": LEDGER_KEY, "MODELGATE_LEDGER_LISTEN": f"127.0.0.1:{self.port}",
               "MODELGATE_LEDGER_REDIS": f"redis://127.0.0.1:{redis_port}/"}
        self.proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok, 30, "ledger", self.proc)

    def stop(self):
        for p in (self.proc, self.redis):
            p.terminate()
            p.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pool", type=int, default=12000, help="tokens per cold pool (larger than the 4096-entry cache)")
    parser.add_argument("--rss-requests", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=["budgets", "mcp"], help="run one section alone (its setups side by side)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))

    warm = work / "warm.txt"
    warm.write_text(svid.mint(BOT, ttl=7200) + "\n")
    pools = {}
    for alg, key in (("ES256", svid.load_key()), ("RS256", svid.load_key(svid.DEMO_RSA_KEY))):
        pools[alg] = work / f"{alg}.txt"
        pools[alg].write_text("\n".join(mint_pool(args.pool, key, alg)) + "\n")
    bodies = {}
    for name, size in SIZES.items():
        bodies[name] = work / f"body-{size}.json"
        bodies[name].write_bytes(body_of(size))

    cases = [(f"warm, {name}", warm, bodies[name]) for name in SIZES] + [
        (f"cold {alg}, 1 KiB", pools[alg], bodies["1 KiB"]) for alg in pools]
    results: dict = {}
    single = argparse.Namespace(**{**vars(args), "connections": 1, "duration": max(1, args.duration // 2)})
    for setup in () if args.only else ("bare", "empty", "native", "modelgate", "nodigest", "minted"):
        envoy = Envoy(setup, work, concurrency=1)
        try:
            check = requests.post(envoy.url, data=body_of(1024), timeout=10,
                                  headers={"authorization": f"Bearer {warm.read_text().strip()}", "content-type": "application/json"})
            assert check.status_code == 200, (setup, check.status_code, check.text[:200])
            for case, tokens, body in cases:
                if setup in ("nodigest", "empty") and not case.startswith("warm"):
                    continue
                if setup == "minted" and case != "warm, 1 KiB":
                    continue
                results[(setup, case)] = wrk(envoy.url, tokens, body, args, work)
                print(f"  {setup:9} {case:16} {results[(setup, case)]['rps']:>9,.0f} req/s", file=sys.stderr, flush=True)
            # Latency without queueing: one connection, 1 MiB bodies.
            if setup in ("bare", "modelgate", "nodigest"):
                results[(setup, "1 MiB, 1 connection")] = wrk(envoy.url, warm, bodies["1 MiB"], single, work)
        finally:
            envoy.stop()

    cell = lambda r: f"{r['rps']:,.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms"  # noqa: E731
    if not args.only:
        report(results, cases, cell)
    if args.only in (None, "budgets"):
        budgets(work, warm, bodies, args, results, cell)
    if args.only in (None, "mcp"):
        mcp(work, warm, bodies, args, results, cell)
    if args.only:
        return 0
    rss = rss_and_size(args, pools, bodies, work)
    if args.json:
        args.json.write_text(json.dumps({f"{s}|{c}": r for (s, c), r in results.items()} | {"rss": rss}, indent=1))
    return 0


def report(results, cases, cell):
    print("| case | bare Envoy | empty wasm filter | jwt_authn + rbac | modelgate | modelgate / bare | modelgate / empty | modelgate / native | modelgate, `audit.prompt: none` |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for case, _, _ in cases:
        b, n, m = (results[(s, case)] for s in ("bare", "native", "modelgate"))
        d, e = results.get(("nodigest", case)), results.get(("empty", case))
        no_digest = f"{cell(d)} ({d['rps'] / b['rps']:.2f})" if d else "—"
        empty, over_empty = (f"{cell(e)} ({e['rps'] / b['rps']:.2f})", f"{m['rps'] / e['rps']:.2f}") if e else ("—", "—")
        print(f"| {case} | {cell(b)} | {empty} | {cell(n)} | {cell(m)} | {m['rps'] / b['rps']:.2f} | {over_empty} | "
              f"{m['rps'] / n['rps']:.2f} | {no_digest} |")
    one = {s: results[(s, "1 MiB, 1 connection")]["p50"] for s in ("bare", "modelgate", "nodigest")}
    added_p99 = results[("modelgate", "warm, 1 KiB")]["p99"] - results[("bare", "warm, 1 KiB")]["p99"]
    print(f"\n1 MiB body, one connection, p50: bare {one['bare']:.2f} ms, modelgate {one['modelgate']:.2f} ms "
          f"(+{one['modelgate'] - one['bare']:.2f} ms), with audit.prompt: none {one['nodigest']:.2f} ms "
          f"(+{one['nodigest'] - one['bare']:.2f} ms).")
    print(f"Added p99 latency, warm 1 KiB, 16 connections: {added_p99:.2f} ms.")
    k, m = results[("modelgate", "warm, 1 KiB")], results[("minted", "warm, 1 KiB")]
    print(f"Per-request minted JWT (ES256) instead of the api key, warm 1 KiB: {m['rps']:,.0f} req/s vs "
          f"{k['rps']:,.0f} ({m['rps'] / k['rps']:.2f}), p50 {m['p50']:.2f} ms vs {k['p50']:.2f} ms.")


def budgets(work, warm, bodies, args, results, cell):
    """The same warm 1 KiB call, counted in shared data, then by the ledger
    and Redis; beside a fresh run of modelgate without a budget."""
    ledger = Ledger(work)
    try:
        for setup in ("modelgate", "budget", "global"):
            envoy = Envoy(setup, work, concurrency=1, ledger_port=ledger.port)
            try:
                check = requests.post(envoy.url, data=body_of(1024), timeout=10, headers={
                    "authorization": f"Bearer {warm.read_text().strip()}", "content-type": "application/json"})
                assert check.status_code == 200, (setup, check.status_code, check.text[:200])
                results[(setup, "budgets, warm 1 KiB")] = wrk(envoy.url, warm, bodies["1 KiB"], args, work)
            finally:
                envoy.stop()
    finally:
        ledger.stop()
    base = results[("modelgate", "budgets, warm 1 KiB")]
    for setup, label in (("budget", "a gateway-scope budget"), ("global", "a global budget (ledger + Redis)")):
        r = results[(setup, "budgets, warm 1 KiB")]
        print(f"Warm 1 KiB with {label}: {cell(r)} vs {cell(base)} without ({r['rps'] / base['rps']:.2f}).")


def mcp(work, warm, bodies, args, results, cell):
    """A 1 KiB `tools/call` to an MCP server, decided on its tool and its
    `repo` argument; beside the warm 1 KiB chat completion of modelgate
    without an MCP server."""
    message, mcp_headers = tool_call_of(1024)
    call = work / "tools-call.json"
    call.write_bytes(message)
    # setup -> path, body, headers, the member only the upstream's answer has
    calls = {"modelgate": ("/openai/v1/chat/completions", bodies["1 KiB"], {}, "choices"),
             "mcp": ("/tools/mcp", call, mcp_headers, "result")}
    token = {"authorization": f"Bearer {warm.read_text().strip()}", "content-type": "application/json"}
    for setup, (path, body, headers, member) in calls.items():
        envoy = Envoy(setup, work, concurrency=1)
        try:
            url = f"http://127.0.0.1:{envoy.listen}{path}"
            check = requests.post(url, data=body.read_bytes(), timeout=10, headers={**token, **headers})
            assert check.status_code == 200 and member in check.json(), (setup, check.status_code, check.text[:200])
            if setup == "mcp":
                # The constraint is read: the same call outside acme/* is refused.
                outside, outside_headers = tool_call_of(1024, "other/api")
                r = requests.post(url, data=outside, timeout=10, headers={**token, **outside_headers})
                assert (r.status_code, r.headers.get("x-modelgate-reason")) == (403, "argument_not_allowed"), r.text[:200]
            results[(setup, "mcp, warm 1 KiB")] = wrk(url, warm, body, args, work, headers)
        finally:
            envoy.stop()
    chat, tool = results[("modelgate", "mcp, warm 1 KiB")], results[("mcp", "mcp, warm 1 KiB")]
    print(f"Warm 1 KiB MCP tools/call (an argument constraint): {cell(tool)} vs {cell(chat)} for the chat completion "
          f"({tool['rps'] / chat['rps']:.2f}).")


def rss_and_size(args, pools, bodies, work):
    # Memory: 2 workers, the cold ES256 pool (the cache fills up), then RSS.
    rss = {}
    for setup in ("bare", "modelgate"):
        envoy = Envoy(setup, work, concurrency=2)
        try:
            sent = 0
            while sent < args.rss_requests:
                sent += wrk(envoy.url, pools["ES256"], bodies["1 KiB"], argparse.Namespace(**{**vars(args), "duration": 5, "threads": 2}), work)["requests"]
            time.sleep(0.5)
            rss[setup] = (envoy.rss_mib(), sent)
        finally:
            envoy.stop()
    print(f"Envoy RSS after {rss['modelgate'][1]:,} requests on 2 workers: bare {rss['bare'][0]:.1f} MiB, "
          f"modelgate {rss['modelgate'][0]:.1f} MiB (+{rss['modelgate'][0] - rss['bare'][0]:.1f} MiB).")
    wasm = ROOT / "build" / "modelgate.wasm"
    print(f"modelgate.wasm: {wasm.stat().st_size:,} bytes")
    return rss


if __name__ == "__main__":
    sys.exit(main())
