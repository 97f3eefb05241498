"""Throughput of Envoy with modelgate against the same Envoy without it.

Both run envoy/envoy.yaml with the provider replaced by a direct response
from Envoy itself, so only the filter differs; wrk drives an allowed
chat-completion call with a valid JWT-SVID (ES256, verified in pure Rust on
every request: no verified-token cache yet). Reports requests/s and the
ratio, measured in one run (machines are noisy: compare ratios, not
absolute figures).

    python tests/bench.py [--duration 10] [--connections 16] [--threads 2]
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
from pathlib import Path

import requests
import yaml

import svid
from harness import ROOT, envoy_binary, envoy_config, free_port, wait_until

REPLY = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})


def bench_config(listen: int, admin: int, work: Path, with_modelgate: bool) -> dict:
    config = envoy_config(listen, admin, free_port(), work / f"audit-{with_modelgate}.log")
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
        route.pop("route", None)
        route["direct_response"] = {"status": 200, "body": {"inline_string": REPLY}}
    if not with_modelgate:
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.wasm"]
        hcm.pop("access_log")
    return config


def run_wrk(url: str, token: str, args, work: Path) -> float:
    script = work / "post.lua"
    body = json.dumps({"model": "gpt-4o-mini", "max_completion_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      f'wrk.headers["content-type"] = "application/json"\nwrk.headers["authorization"] = "Bearer {token}"\n')
    out = subprocess.run(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def measure(with_modelgate: bool, token: str, args, work: Path) -> float:
    listen, admin = free_port(), free_port()
    path = work / f"envoy-{with_modelgate}.yaml"
    path.write_text(yaml.safe_dump(bench_config(listen, admin, work, with_modelgate)))
    log = (work / f"envoy-{with_modelgate}.log").open("w")
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-bench"}
    proc = subprocess.Popen([str(envoy_binary()), "-c", str(path), "-l", "warning", "--concurrency", str(args.threads),
                             "--base-id", str(secrets.randbelow(1 << 20) + 3000)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{admin}/ready", timeout=1).ok, 30, "envoy", proc, Path(log.name))
        url = f"http://127.0.0.1:{listen}/openai/v1/chat/completions"
        check = requests.post(url, json={"model": "gpt-4o-mini", "messages": []}, headers={"authorization": f"Bearer {token}"}, timeout=5)
        assert check.status_code == 200, check.text
        return run_wrk(url, token, args, work)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))
    token = svid.mint("spiffe://example.org/ns/support/sa/bot", ttl=3600)
    bare = measure(False, token, args, work)
    gated = measure(True, token, args, work)
    print(f"| Envoy alone | {bare:,.0f} req/s | 1.00 |")
    print(f"| Envoy + modelgate (ES256 verified per request) | {gated:,.0f} req/s | {gated / bare:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
