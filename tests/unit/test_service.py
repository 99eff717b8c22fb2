"""systemd integration: the sd_notify messages, the watchdog pinged from the event loop (a
blocked loop stops the pings, so systemd's watchdog fires), and the shipped units checked
with systemd-analyze (verify, and the offline security exposure)."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cloudvip.service import ServiceManager

UNITS = Path(__file__).resolve().parents[2] / "systemd"


class Listener:
    """$NOTIFY_SOCKET, each message timestamped as it arrives (by a thread: the loop may block)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue

    def close(self) -> list[tuple[float, str]]:
        time.sleep(0.1)
        self._done.set()
        self._thread.join()
        self.sock.close()
        return self.messages


def test_ready_watchdog_from_the_loop_and_stopping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = Listener(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s: pings every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    async def go() -> tuple[float, float]:
        svc = ServiceManager()
        svc.ready("1 instance(s)")
        await asyncio.sleep(0.35)
        blocked_at = time.monotonic()
        time.sleep(0.5)  # the loop is wedged: no ping may come from it now
        unblocked_at = time.monotonic()
        await asyncio.sleep(0.15)
        svc.stopping()
        return blocked_at, unblocked_at

    blocked_at, unblocked_at = asyncio.run(go())
    msgs = listener.close()
    texts = [m for _, m in msgs]
    assert texts[0] == "READY=1\nSTATUS=1 instance(s)" and texts[-1].startswith("STOPPING=1")
    pings = [t for t, m in msgs if m == "WATCHDOG=1"]
    assert len([t for t in pings if t < blocked_at]) >= 3  # every 0.1 s while the loop runs
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert max(gaps) >= 0.45  # nothing while blocked: systemd (WatchdogSec) would kill us
    assert not [t for t in pings if blocked_at + 0.05 < t < unblocked_at - 0.05]


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    svc = ServiceManager()
    assert svc.address == "" and svc.watchdog == 0.0
    svc.notify("READY=1")  # a no-op, no error


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze missing (Debian package systemd; make test installs it)")


def sandbox(tmp_path: Path) -> Path:
    """A root for `systemd-analyze --root`: the system's units and a stand-in /usr/local/bin/cloudvip."""
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd").mkdir(parents=True)
    stub = root / "usr/local/bin/cloudvip"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    shutil.copy("/bin/kill", root / "bin/kill")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    return root


def verify(root: Path, text: str, name: str) -> subprocess.CompletedProcess[str]:
    unit = root / "etc/systemd/system" / name
    unit.write_text(text)
    return subprocess.run(["systemd-analyze", f"--root={root}", "verify", str(unit)],
                          capture_output=True, text=True, timeout=60)


@needs_analyze
@pytest.mark.parametrize("name", ["cloudvip.service", "cloudvip-companion.service"])
def test_units_verify_and_a_broken_one_does_not(name: str, tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    text = (UNITS / name).read_text()
    done = verify(root, text, name)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    broken = verify(root, text.replace("Type=notify", "Type=notifyy"), name)
    assert "notifyy" in broken.stderr


@needs_analyze
@pytest.mark.parametrize("name, limit", [("cloudvip.service", 4.0), ("cloudvip-companion.service", 3.0)])
def test_security_exposure_is_ok(name: str, limit: float) -> None:
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNITS / name)],
                          capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", done.stdout + done.stderr)
    assert m, done.stdout[-2000:] + done.stderr[-2000:]
    print(f"\n{name}: systemd-analyze security exposure {m.group(1)} {m.group(2)}")
    assert float(m.group(1)) <= limit and m.group(2) in ("SAFE", "OK"), m.group(0)
