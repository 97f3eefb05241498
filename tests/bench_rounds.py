"""Interleaved rounds: several setups of tests/bench.py up at once (one
Envoy worker each), wrk on each in turn, round after round, the median
reported. On a noisy machine this compares setups far better than one run
after another. A setup is bench.py's name plus any `+variant`:

    python tests/bench_rounds.py empty modelgate+before modelgate --before old.wasm \\
        [--sizes "1 KiB,64 KiB"] [--rounds 6] [--duration 3] [--connections 16] [--body conversation]

Variants: `before` (the module given by --before), `nodigest`
(`audit.prompt: none`), `noguard` (no prompt_guard), `nolog` (no access
log), `nobackstop` (no RBAC backstop).
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import bench
import svid
from harness import plugin_configuration


def conversation(size: int) -> bytes:
    """A chat completion shaped like agent traffic: text with line breaks
    (escapes, so the guard decodes every string) and numbers."""
    head = '{"model":"gpt-4o-mini","max_completion_tokens":16,"messages":[{"role":"user","content":"'
    filler = "Summarize the ticket history for customer 4411 and draft a reply.\\n- step 2: check the refund (order 88-1203)\\n"
    text = filler * (size // len(filler) + 1)
    return (head + text[: max(0, size - len(head) - 4)] + '"}]}').encode()


def wasm_filter(config) -> dict:
    return next(f for f in bench.hcm(config)["http_filters"] if f["name"] == "envoy.filters.http.wasm")


def patch_policy(config, change) -> None:
    value = plugin_configuration(config)
    policy = json.loads(value["value"])
    change(policy)
    value["value"] = json.dumps(policy)


def variants(before: Path | None) -> dict:
    def use_before(config):
        vm = wasm_filter(config)["typed_config"]["config"]["vm_config"]
        vm["code"]["local"]["filename"] = str(before)
        vm["vm_id"] = "before"

    def no_backstop(config):
        h = bench.hcm(config)
        h["http_filters"] = [f for f in h["http_filters"] if f["name"] != "modelgate.released"]

    return {
        "before": use_before,
        "nodigest": lambda c: patch_policy(c, lambda p: p.update(audit={"prompt": "none"})),
        "noguard": lambda c: patch_policy(c, lambda p: p.pop("prompt_guard", None)),
        "nolog": lambda c: bench.hcm(c).pop("access_log"),
        "nobackstop": no_backstop,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setups", nargs="+")
    parser.add_argument("--sizes", default="1 KiB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--body", choices=["bench", "conversation"], default="bench")
    parser.add_argument("--before", type=Path, help="the module the `before` variant runs")
    args = parser.parse_args()
    table = variants(args.before)
    plain = bench.config_for

    def config_for(setup, *rest, **kw):
        base, *mods = setup.split("+")
        config = plain(base, *rest, **kw)
        for m in mods:
            table[m](config)
        return config

    bench.config_for = config_for
    body_of = conversation if args.body == "conversation" else bench.body_of
    work = Path(tempfile.mkdtemp(prefix="modelgate-rounds-"))
    tokens = work / "warm.txt"
    tokens.write_text(svid.mint(bench.BOT, ttl=7200) + "\n")
    envoys = {s: bench.Envoy(s, work, concurrency=1) for s in args.setups}
    try:
        for size in (s.strip() for s in args.sizes.split(",")):
            body = work / f"body-{bench.SIZES[size]}.json"
            body.write_bytes(body_of(bench.SIZES[size]))
            runs: dict = {s: [] for s in args.setups}
            for _ in range(args.rounds):
                for setup, envoy in envoys.items():
                    runs[setup].append(bench.wrk(envoy.url, tokens, body, args, work))
            base = statistics.median(r["rps"] for r in runs[args.setups[0]])
            for setup in args.setups:
                rps = statistics.median(r["rps"] for r in runs[setup])
                p50 = statistics.median(r["p50"] for r in runs[setup])
                print(f"{size:7} {setup:26} {rps:>9,.0f} req/s  {rps / base:.3f}× {args.setups[0]}  p50 {p50:.2f} ms  "
                      f"rounds {[round(r['rps']) for r in runs[setup]]}", flush=True)
    finally:
        for envoy in envoys.values():
            envoy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
