"""The README's run command: the demo starts, and every example it prints
does what it says (run.py --check runs each one and compares)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_examples_behave_as_printed():
    result = subprocess.run([sys.executable, str(ROOT / "envoy/demo/run.py"), "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("  ok  ") == 4, result.stdout
