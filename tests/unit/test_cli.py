"""`cloudvip check-config` as an operator runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloudvip.cli import main

DATA = Path(__file__).parent.parent / "data"


def test_valid_config_prints_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-f", str(DATA / "tutorial" / "11-sync-group.conf")]) == 0
    out = capsys.readouterr().out
    assert "OK, 2 instances, 1 sync group(s)" in out
    assert "VI_WEB: eth0 vrid 51 priority 100" in out and "sync group: SG_1" in out


def test_warnings_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-f", str(DATA / "tutorial" / "01-master.conf")]) == 0
    err = capsys.readouterr().err
    assert "01-master.conf:12: warning: auth_pass is 14 characters" in err


def test_broken_config_exits_1_with_file_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 300\n}\n")
    assert main(["check-config", "-f", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: virtual_router_id 300 is out of range (expected 1..255)" in err
    assert "configuration NOT valid" in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-f", str(tmp_path / "nope.conf")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_console_entry_point_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "cloudvip", "check-config", "-f",
                          str(DATA / "tutorial" / "08-haproxy.conf")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "tracks: script check_haproxy(-50)" in out.stdout


def test_status_shows_an_instance_waiting_for_its_provider() -> None:
    from cloudvip.status_table import render

    text = render({"ok": True, "instances": [], "waiting": [
        {"name": "VI_2", "state": "FAULT", "reason": "VI_2: provider aws failed to start: IMDS down",
         "since": 0.0, "attempts": 3}]})
    assert text == ("VI_2: FAULT  out of the election, its provider has not started (attempt 3): "
                    "VI_2: provider aws failed to start: IMDS down")


def test_lab_without_the_lab_distribution_says_where_it_is(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # as on a host with the product wheel only (its modules may be loaded by tests run before)
    for name in [n for n in sys.modules if n == "cloudvip_lab" or n.startswith("cloudvip_lab.")] + ["cloudvip_lab"]:
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["lab"]) == 2
    assert "cloudvip-lab distribution" in capsys.readouterr().err


def test_run_on_a_file_without_vrrp_instances_says_so_and_exits_0(tmp_path: Path) -> None:
    conf = tmp_path / "lvs.conf"
    conf.write_text("virtual_server 192.0.2.100 80 {\n    delay_loop 6\n}\n")
    done = subprocess.run([sys.executable, "-m", "cloudvip", "run", "-f", str(conf), "--no-control"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "nothing for cloudvip to run" in done.stderr, done.stderr
