"""The audit trail end to end: every record validates against
docs/audit.schema.json, each worker VM chains its records, and
`modelgate audit verify` passes a real two-worker log and finds a deleted,
an edited and a swapped record."""

import concurrent.futures
import json
import subprocess
from pathlib import Path

import pytest
import requests

import svid
from conftest import running_gateway
from harness import ROOT

BOT = "spiffe://example.org/ns/support/sa/bot"
HI = [{"role": "user", "content": "hi"}]


def verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["cargo", "run", "-q", "-p", "modelgate-policies", "--bin", "modelgate", "--", "audit", "verify",
                           str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def chat(gw, model="gpt-4o-mini"):
    # A fresh connection each: the kernel spreads them over both workers.
    return requests.post(f"{gw.url}/openai/v1/chat/completions", json={"model": model, "messages": HI},
                         headers={"authorization": f"Bearer {svid.mint(BOT)}", "connection": "close"}, timeout=10)


@pytest.fixture(scope="module")
def chained_log(tmp_path_factory):
    """A log from a two-worker Envoy: 80 calls, allowed and denied."""
    with running_gateway(extra_args=["--concurrency", "2"]) as gw:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: chat(gw, "gpt-4o-mini" if i % 4 else "gpt-4o").status_code, range(80)))
        assert sorted(set(statuses)) == [200, 403]
        gw.audit_for(chat(gw).headers["x-request-id"])  # flushed
        lines = [line for line in gw.access_log.read_text().splitlines() if line.strip()]
    path = tmp_path_factory.mktemp("audit") / "audit.log"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def test_a_two_worker_log_verifies(chained_log):
    path, lines = chained_log
    chains = {json.loads(line)["chain"] for line in lines}
    assert len(chains) == 2, "both workers wrote records"
    result = verify(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: every chain is continuous" in result.stdout


def tampered(tmp_path, lines, change) -> subprocess.CompletedProcess:
    lines = list(lines)
    change(lines)
    path = tmp_path / "tampered.log"
    path.write_text("\n".join(lines) + "\n")
    return verify(path)


def index_of(lines, chain, seq):
    return next(i for i, line in enumerate(lines) if (json.loads(line)["chain"], json.loads(line)["seq"]) == (chain, seq))


def test_a_deleted_record_is_a_gap(chained_log, tmp_path):
    _, lines = chained_log
    chain = json.loads(lines[0])["chain"]
    result = tampered(tmp_path, lines, lambda ls: ls.pop(index_of(ls, chain, 5)))
    assert result.returncode == 1
    assert f"chain {chain}: record 5 is missing" in result.stdout


def test_an_edited_record_breaks_the_next_link(chained_log, tmp_path):
    _, lines = chained_log
    chain = json.loads(lines[0])["chain"]

    def edit(ls):
        i = index_of(ls, chain, 7)
        ls[i] = ls[i].replace('"mode":"enforce"', '"mode":"audit"', 1)
    result = tampered(tmp_path, lines, edit)
    assert result.returncode == 1
    assert f"chain {chain}: record 7" in result.stdout and "altered" in result.stdout


def test_swapped_records_are_out_of_order(chained_log, tmp_path):
    _, lines = chained_log
    chain = json.loads(lines[0])["chain"]

    def swap(ls):
        i, j = index_of(ls, chain, 3), index_of(ls, chain, 4)
        ls[i], ls[j] = ls[j], ls[i]
    result = tampered(tmp_path, lines, swap)
    assert result.returncode == 1
    assert f"chain {chain}: record 3" in result.stdout and "after a later record" in result.stdout
