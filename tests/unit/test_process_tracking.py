"""keepalived's track_process: matching /proc's processes, quorum, delays, the config block."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from cloudvip.config import loads
from cloudvip.config.model import TrackProcess
from cloudvip.process_tracking import Hysteresis, ProcessInfo, ProcessWatch, count, in_quorum, matches, read_processes

LOC = loads("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 192.0.2.1\n }\n}\n",
            "k.conf").instances[0].loc
HAPROXY = ProcessInfo("haproxy", ("/usr/sbin/haproxy", "-f", "/etc/haproxy/haproxy.cfg", "-Ws"))


def spec(name: str = "p", **kw: object) -> TrackProcess:
    return TrackProcess(name, LOC, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw, expected", [
    (dict(process="haproxy"), True),
    (dict(process="haprox"), False),  # an exact name, not pgrep's regular expression
    (dict(process="/usr/sbin/haproxy", full_command=True), True),
    (dict(process="haproxy", full_command=True), False),
    (dict(process="/usr/sbin/haproxy", params=("-f", "/etc/haproxy/haproxy.cfg", "-Ws"), full_command=True,
          param_match="exact"), True),
    (dict(process="/usr/sbin/haproxy", params=("-f",), full_command=True, param_match="exact"), False),
    (dict(process="/usr/sbin/haproxy", params=("-f",), full_command=True, param_match="partial"), True),
    (dict(process="/usr/sbin/haproxy", params=("-f", "/etc/haproxy/"), full_command=True,
          param_match="partial"), False),
    (dict(process="/usr/sbin/haproxy", params=("-f", "/etc/haproxy/"), full_command=True,
          param_match="initial"), True),
    (dict(process="/usr/sbin/haproxy", full_command=True, param_match="exact"), False),  # must have no params
])
def test_matching_as_keepalived_matches(kw: dict[str, object], expected: bool) -> None:
    assert matches(spec(**kw), HAPROXY) is expected


def test_quorum_and_quorum_max() -> None:
    s = spec(process="x", quorum=2, quorum_max=3)
    assert [in_quorum(s, n) for n in range(5)] == [False, False, True, True, False]
    assert in_quorum(spec(process="x", quorum_max=0), 0) is False  # quorum 1 by default


def test_fork_and_terminate_delays_debounce_the_verdict() -> None:
    h = Hysteresis(spec(process="x", fork_delay=2.0, terminate_delay=1.0), up=True)
    assert h.update(0, 10.0) is None and h.update(0, 10.5) is None  # not down before terminate_delay
    assert h.update(0, 11.0) is False
    assert h.update(1, 12.0) is None and h.update(0, 12.5) is None  # a fork/exec bounce: nothing
    assert h.update(1, 13.0) is None and h.update(1, 15.0) is True


def test_the_config_block_as_keepalived_reads_it() -> None:
    cfg = loads('vrrp_track_process haproxy {\n    process /usr/sbin/haproxy -f "/etc/haproxy/haproxy.cfg"\n'
                "    param_match partial\n    weight -20 reverse\n    quorum 1\n    quorum_max 2\n    delay 0.5\n}\n"
                "vrrp_track_process gone {\n    weight 5\n}\n"
                "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    track_process {\n"
                "        haproxy weight 10\n        gone\n        nosuch\n    }\n"
                "    virtual_ipaddress {\n        192.0.2.10\n    }\n}\n", "k.conf")
    tp = cfg.track_processes["haproxy"]
    assert (tp.process, tp.params, tp.param_match, tp.full_command) == (
        "/usr/sbin/haproxy", ("-f", "/etc/haproxy/haproxy.cfg"), "partial", True)
    assert (tp.weight, tp.reverse, tp.quorum, tp.quorum_max, tp.fork_delay, tp.terminate_delay) == (
        -20, True, 1, 2, 0.5, 0.5)
    assert [r.name for r in cfg.instances[0].track_processes] == ["haproxy"]
    text = "\n".join(str(d) for d in cfg.diagnostics)
    assert "vrrp_track_process gone has no process: removed" in text
    assert "track process nosuch not found" in text and "track process gone not found" in text


def test_read_processes_from_a_proc_tree(tmp_path: Path) -> None:
    for pid, stat, cmdline in ((1, b"1 (nginx: master) S 0", b"nginx: master process\0"),
                               (2, b"2 (haproxy) Z 1", b""),  # a zombie: not running
                               (3, b"3 (sleep) S 1", b"/bin/sleep\x00100\x00")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_bytes(stat)
        (tmp_path / str(pid) / "cmdline").write_bytes(cmdline)
    (tmp_path / "self").mkdir()
    procs = list(read_processes(str(tmp_path)))
    assert sorted(p.comm for p in procs) == ["nginx: master", "sleep"]
    assert count([spec("comm", process="sleep"), spec("argv", process="/bin/sleep", full_command=True,
                                                      params=("100",), param_match="exact")], procs) == {
        "comm": 1, "argv": 1}


def test_a_real_process_comes_and_goes() -> None:
    marker = "4242.125"  # a sleep nobody else runs
    tracked = spec(process="/bin/sleep", params=(marker,), full_command=True, param_match="exact")
    seen: list[bool] = []

    async def go() -> None:
        watch = ProcessWatch({"p": tracked}, lambda name, up: seen.append(up))
        watch.scan(0.0)
        proc = subprocess.Popen(["/bin/sleep", marker])
        try:
            watch.scan(1.0)
            assert watch.counts["p"] == 1
        finally:
            proc.kill()
            proc.wait()
        watch.scan(2.0)
    asyncio.run(go())
    assert seen == [False, True, False]
