"""`make lab` (the README's first command) shows its failovers: the default lab passes."""

from __future__ import annotations

import subprocess
import sys

from .conftest import needs_root

pytestmark = [needs_root]


def test_the_default_lab_runs_to_the_end() -> None:
    done = subprocess.run([sys.executable, "-m", "cloudvip", "lab"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "lab OK: election, failover, preemption and graceful handover all seen" in done.stdout
    assert "cleaned up" in done.stdout
