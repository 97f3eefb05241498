"""The engine's warm path per request (policies/benches/flow.rs), natively
and built for wasm32-wasip1 under Node's V8 (the engine Envoy runs): the
demo policy of envoy/envoy.yaml, a JWT-SVID from tests/svid.py.

    python tests/flow_bench.py [--requests 20000] [--size 1024] [--wasm-only] [--cpu-prof DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

import svid
from harness import ENVOY_YAML, ROOT, policy_text

NODE_RUNNER = """
const { WASI } = require('node:wasi');
const fs = require('node:fs');
const wasi = new WASI({ version: 'preview1', args: process.argv.slice(1), env: process.env });
const module = new WebAssembly.Module(fs.readFileSync(process.argv[1]));
const instance = new WebAssembly.Instance(module, wasi.getImportObject());
wasi.start(instance);
"""


def built(target: str | None) -> Path:
    """The bench binary (native) or module (wasm32-wasip1), built."""
    cmd = ["cargo", "bench", "-p", "modelgate-policies", "--bench", "flow", "--no-run", "--message-format=json"]
    if target:
        cmd += ["--target", target]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "flow" and msg.get("executable"):
            return Path(msg["executable"])
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "flow":
            wasm = [f for f in msg.get("filenames", []) if f.endswith(".wasm")]
            if wasm:
                return Path(wasm[0])
    raise SystemExit("the flow bench was not built")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--wasm-only", action="store_true")
    parser.add_argument("--body", choices=["conversation", "attachment"], default="conversation",
                        help="text with line breaks, or one long base64-like run (bench.py's body)")
    parser.add_argument("--cpu-prof", type=Path, help="write a V8 CPU profile of the wasm run here")
    args = parser.parse_args()
    policy = policy_text(yaml.safe_load(ENVOY_YAML.read_text()))
    now = int(time.time())
    env = {**os.environ, "MODELGATE_BENCH_POLICY": policy, "MODELGATE_BENCH_NOW_MS": str(now * 1000),
           "MODELGATE_BENCH_TOKEN": svid.mint("spiffe://example.org/ns/support/sa/bot", iat=now, ttl=7200)}
    run = [str(args.requests), str(args.size), args.body]
    if not args.wasm_only:
        native = built(None)
        print("native:", subprocess.run([str(native), *run], env=env, check=True, capture_output=True, text=True).stdout.strip())
    wasm = built("wasm32-wasip1")
    node = ["node", "--no-warnings"]
    if args.cpu_prof:
        node += ["--cpu-prof", "--cpu-prof-dir", str(args.cpu_prof), "--cpu-prof-interval", "50"]
    out = subprocess.run([*node, "-e", NODE_RUNNER, str(wasm), *run], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the wasm run failed:\n{out.stderr}")
    print("wasm (V8):", out.stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
