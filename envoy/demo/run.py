"""The local demo: the stand-in provider, Envoy with modelgate.wasm, and
JWT-SVIDs for the demo workloads. Prints what to try, checks that each
example does what it says, then runs until Ctrl-C.

    make run                       # or: .venv/bin/python envoy/demo/run.py
    .venv/bin/python envoy/demo/run.py --check   # check the examples and exit
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import svid  # noqa: E402

GATEWAY = "http://127.0.0.1:10000"
ADMIN = "http://127.0.0.1:9901"
UPSTREAM = "http://127.0.0.1:18080"
OUT = ROOT / "build" / "demo"
AUDIT_LOG = ROOT / "build" / "audit.log"
WORKLOADS = {
    "bot": "spiffe://example.org/ns/support/sa/bot",
    "research": "spiffe://example.org/ns/research/sa/agent",
}
DEMO_KEYS = {"OPENAI_API_KEY": "sk-demo-openai-key-held-by-the-gateway",
             "ANTHROPIC_API_KEY": "sk-ant-demo-key-held-by-the-gateway",
             "GEMINI_API_KEY": "AIza-demo-gemini-key-held-by-the-gateway",
             "AZURE_OPENAI_API_KEY": "demo-azure-key-held-by-the-gateway",
             "VERTEX_ACCESS_TOKEN": "ya29.demo-vertex-token-held-by-the-gateway",
             # Envoy's SigV4 filter signs Bedrock requests with these.
             "AWS_ACCESS_KEY_ID": "AKIADEMOGATEWAY00000",
             "AWS_SECRET_ACCESS_KEY": "demo-secret-held-by-the-gateway"}


def wait_for(url: str, what: str, proc: subprocess.Popen, log: Path) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            sys.exit(f"{what} exited ({proc.returncode}); see {log}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    sys.exit(f"{what} did not become ready; see {log}")


def mint_svids() -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    tokens = {name: svid.mint(spiffe_id) for name, spiffe_id in WORKLOADS.items()}
    tokens["expired"] = svid.mint(WORKLOADS["bot"], iat=int(time.time()) - 7200, ttl=3600)
    for name, token in tokens.items():
        (OUT / f"{name}.jwt").write_text(token + "\n")
    return tokens


def chat(model: str) -> str:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})


# (title, svid file, path, body, expected status, expected reason)
EXAMPLES = [
    ("allowed: the support bot calls gpt-4o-mini", "bot", "/openai/v1/chat/completions", chat("gpt-4o-mini"), 200, "ok"),
    ("model denial: the support bot may not call gpt-4o", "bot", "/openai/v1/chat/completions", chat("gpt-4o"), 403, "model_not_allowed"),
    ("deny rule: even research may not call gpt-3.5-turbo", "research", "/openai/v1/chat/completions", chat("gpt-3.5-turbo"), 403, "model_not_allowed"),
    ("bad SVID: an expired JWT-SVID", "expired", "/openai/v1/chat/completions", chat("gpt-4o-mini"), 401, "invalid_svid"),
]


def curl(name: str, path: str, body: str) -> str:
    return (f"curl -s -i {GATEWAY}{path} -H \"authorization: Bearer $(cat build/demo/{name}.jwt)\" "
            f"-H 'content-type: application/json' -d '{body}'")


def check(tokens: dict) -> bool:
    """Runs every printed example and says whether it did what it says."""
    ok = True
    for title, name, path, body, status, reason in EXAMPLES:
        r = requests.post(f"{GATEWAY}{path}", data=body, timeout=10,
                          headers={"authorization": f"Bearer {tokens[name]}", "content-type": "application/json"})
        got = r.headers.get("x-modelgate-reason", "ok")
        good = r.status_code == status and got == reason
        ok &= good
        print(f"  {'ok ' if good else 'BAD'} {r.status_code} {got:<18} {title}")
    return ok


def print_examples() -> None:
    print("\nTry these (run from the repository root):\n")
    for title, name, path, body, status, reason in EXAMPLES:
        print(f"# {title} -> {status} {reason}")
        print(curl(name, path, body) + "\n")
    print("# The official SDKs, unmodified: the JWT-SVID is the API key")
    print(".venv/bin/python -c \"from openai import OpenAI; "
          f"c = OpenAI(api_key=open('build/demo/bot.jwt').read().strip(), base_url='{GATEWAY}/openai/v1'); "
          "print(c.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}]).choices[0].message.content)\"")
    print(".venv/bin/python -c \"from anthropic import Anthropic; "
          f"c = Anthropic(api_key=open('build/demo/bot.jwt').read().strip(), base_url='{GATEWAY}/anthropic'); "
          "print(c.messages.create(model='claude-haiku-4-5', max_tokens=64, messages=[{'role': 'user', 'content': 'hi'}]).content[0].text)\"")
    print("\n# Mint an SVID for any workload of the demo trust domain")
    print(".venv/bin/python tests/svid.py mint spiffe://example.org/ns/research/sa/notebook > build/demo/notebook.jwt")
    print(f"\nAudit records, one JSON line per request: tail -f {AUDIT_LOG.relative_to(ROOT)}")
    print(f"Envoy admin: {ADMIN}   Envoy log: build/envoy.log   Provider keys (gateway only): {', '.join(DEMO_KEYS)}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="check the examples and exit")
    args = parser.parse_args()
    (ROOT / "build").mkdir(exist_ok=True)
    upstream_log, envoy_log = ROOT / "build" / "upstream.log", ROOT / "build" / "envoy.log"
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "tests" / "upstream.py"), "--port", "18080"],
                                      stdout=upstream_log.open("w"), stderr=subprocess.STDOUT))
        wait_for(f"{UPSTREAM}/__health", "the stand-in provider", procs[-1], upstream_log)
        envoy = Path(sys.executable).parent / "envoy"
        procs.append(subprocess.Popen([str(envoy), "-c", "envoy/envoy.yaml", "--file-flush-interval-msec", "100"],
                                      cwd=ROOT, env={**os.environ, **DEMO_KEYS},
                                      stdout=envoy_log.open("w"), stderr=subprocess.STDOUT))
        wait_for(f"{ADMIN}/ready", "Envoy", procs[-1], envoy_log)
        tokens = mint_svids()
        print(f"modelgate demo: Envoy on {GATEWAY}, stand-in provider on {UPSTREAM}")
        print("JWT-SVIDs in build/demo/: " + ", ".join(f"{n}.jwt ({WORKLOADS.get(n, 'bot, expired')})" for n in tokens))
        print("\nChecking the examples:")
        ok = check(tokens)
        if args.check:
            return 0 if ok else 1
        print_examples()
        print("\nRunning; Ctrl-C stops Envoy and the provider.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
