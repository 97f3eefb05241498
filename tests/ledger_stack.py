"""The budget ledger's stack for end-to-end runs: a real redis-server and
the real modelgate-ledger (target/release), each on a free port
(tests/test_budgets_global.py, tests/soak.py)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from harness import ROOT, free_port

LEDGER_BIN = ROOT / "target" / "release" / "modelgate-ledger"


class Redis:
    """A redis-server on a fixed free port, in a temp dir: with no
    persistence, or (`persist`) with an append-only file synced on every
    write, so that a restart keeps every counter."""

    def __init__(self, binary: str, cli: str, persist: bool = False):
        self.binary, self.cli, self.persist = binary, cli, persist
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="modelgate-redis-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        assert self.proc is None, "redis is running"
        deadline = time.monotonic() + 10
        while True:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 *(["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"])],
                cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.ping():
                    return
                time.sleep(0.02)
            self.stop()  # the port may still be held by the one stopped before: again
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def ping(self) -> bool:
        r = subprocess.run([self.cli, "-p", str(self.port), "ping"], capture_output=True, text=True, timeout=5)
        return r.stdout.strip() == "PONG"

    def hgetall(self, key: str) -> dict:
        r = subprocess.run([self.cli, "-p", str(self.port), "--raw", "hgetall", key],
                           capture_output=True, text=True, timeout=5, check=True)
        lines = r.stdout.splitlines()
        return dict(zip(lines[::2], lines[1::2]))

    def exists(self, key: str) -> bool:
        r = subprocess.run([self.cli, "-p", str(self.port), "exists", key], capture_output=True, text=True, timeout=5)
        return r.stdout.strip() == "1"


class Ledger:
    """One modelgate-ledger process on a free port."""

    def __init__(self, key: str, redis_port: int):
        self.key, self.redis_port = key, redis_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkdtemp(prefix="modelgate-ledger-")) / "ledger.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Ledger":
        env = {**os.environ, "MODELGATE_LEDGER_KEY": self.key, "MODELGATE_LEDGER_LISTEN": f"127.0.0.1:{self.port}",
               "MODELGATE_LEDGER_REDIS": f"redis://127.0.0.1:{self.redis_port}/"}
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([str(LEDGER_BIN)], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"modelgate-ledger exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        pytest.fail(f"modelgate-ledger not healthy after 15 s:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", headers={"authorization": f"Bearer {self.key}"}, timeout=5).text


class Stack:
    def __init__(self, redis: Redis, ledger: Ledger, key: str):
        self.redis, self.ledger, self.key = redis, ledger, key


def binaries() -> tuple[str, str]:
    server = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    cli = shutil.which("redis-cli", path=str(Path(server).parent) + os.pathsep + os.environ.get("PATH", "")) if server else None
    if not server or not cli:
        pytest.fail("redis-server and redis-cli are needed for the global budget tests: "
                    "`apt-get install -y redis-server` (or point REDIS_SERVER at the binary)")
    if not LEDGER_BIN.exists():
        try:
            built = subprocess.run(["cargo", "build", "--release", "-p", "modelgate-ledger"], cwd=ROOT,
                                   capture_output=True, text=True)
            why = built.stderr[-4000:]
        except OSError as e:
            built, why = None, str(e)
        if built is None or built.returncode != 0 or not LEDGER_BIN.exists():
            pytest.fail(f"{LEDGER_BIN} is missing and `cargo build --release -p modelgate-ledger` failed "
                        f"(run `make ledger`):\n{why}")
    return server, cli
