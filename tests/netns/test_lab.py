"""`make lab` (the README's first command) shows its failovers: the default lab passes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cloudvip.scripts import DEFAULT_SCRIPT_USER, user_exists

from .conftest import needs_keepalived, needs_root

pytestmark = [needs_root]


def test_the_default_lab_runs_to_the_end() -> None:
    done = subprocess.run([sys.executable, "-m", "cloudvip", "lab"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "lab OK: election, failover, preemption and graceful handover all seen" in done.stdout
    assert "cleaned up" in done.stdout


@needs_keepalived
def test_the_companion_lab_runs_to_the_end_and_cleans_up() -> None:
    """`cloudvip lab --cloud aws --companion`: hardened stock keepalived, a companion per node."""
    pytest.importorskip("moto")
    had_user = user_exists(DEFAULT_SCRIPT_USER)
    done = subprocess.run([sys.executable, "-m", "cloudvip", "lab", "--cloud", "aws", "--companion"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    out = done.stdout
    assert "lab OK: stock keepalived (hardened) elected, cloudvip's companion moved the VIP in the cloud" in out
    assert "failover: " in out and "API writes: node2 1" in out
    assert f"`cloudvip notify` as {DEFAULT_SCRIPT_USER}" in out and "enable_script_security" in out
    assert "cloud aws {" not in out.split("companion file")[0]  # keepalived.conf has nothing cloudvip-only
    assert "cleaned up" in out
    assert user_exists(DEFAULT_SCRIPT_USER) == had_user  # a user it created is gone again
    assert not [p for p in os.listdir("/run") if p.startswith("cloudvip-lab-")]
