"""Health checks: fall/rise, native HAProxy verdicts, track files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cloudvip.config import loads
from cloudvip.config.model import HaproxyProbe, ScriptCommand, TrackFile, VrrpScript
from cloudvip.config.diagnostics import Location
from cloudvip.health import (Check, FileWatch, ScriptCheck, haproxy_command, haproxy_verdict, read_track_file)
from cloudvip.scripts import ScriptRunner

LOC = Location("t", 1)


def spec(**kw: object) -> VrrpScript:
    return VrrpScript("chk", LOC, ScriptCommand("/bin/true", ("/bin/true",)), **kw)  # type: ignore[arg-type]


def feed(check: Check, results: list[bool]) -> list[bool]:
    changes: list[bool] = []
    check.on_change = lambda _n, ok: changes.append(ok)
    for ok in results:
        check.record(ok, "")
    return changes


def test_fall_and_rise_count_consecutive_results() -> None:
    c = Check(spec(fall=3, rise=2), lambda *_: None)
    assert feed(c, [False, False, True, False, False]) == []  # never 3 in a row
    assert feed(c, [False]) == [False]
    assert feed(c, [True, False, True]) == []
    assert feed(c, [True]) == [True]


def test_init_fail_starts_failed() -> None:
    c = Check(spec(init_fail=True), lambda *_: None)
    assert not c.healthy
    assert feed(c, [True]) == [True]


def test_script_check_end_to_end(tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    s = tmp_path / "chk.sh"
    s.write_text(f"#!/bin/sh\ntest -e {flag}\n")
    s.chmod(0o755)
    changes: list[bool] = []

    async def go() -> None:
        check = ScriptCheck(VrrpScript("chk", LOC, ScriptCommand(str(s), (str(s),)), interval=0.05, fall=2, rise=1),
                            ScriptRunner(), lambda _n, ok: changes.append(ok))
        check.start()
        await asyncio.sleep(0.4)
        flag.touch()
        await asyncio.sleep(0.3)
        await check.stop()

    asyncio.run(go())
    assert changes == [False, True]


def test_hung_script_counts_as_failed(tmp_path: Path) -> None:
    s = tmp_path / "hang.sh"
    s.write_text("#!/bin/sh\nsleep 30\n")
    s.chmod(0o755)

    async def go() -> tuple[bool, str]:
        check = ScriptCheck(VrrpScript("h", LOC, ScriptCommand(str(s), (str(s),)), interval=1, timeout=0.2),
                            ScriptRunner(), lambda *_: None)
        return await check.probe()

    ok, detail = asyncio.run(go())
    assert not ok and "timed out" in detail


STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight
fe_web,FRONTEND,,,0,0,2000,0,0,0,0,0,0,,,,,OPEN,
be_web,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1
be_web,s2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1
be_web,s3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/3,1
be_web,BACKEND,0,0,0,0,200,0,0,0,0,0,,0,0,0,0,UP,2
"""


@pytest.mark.parametrize("probe,ok,detail", [
    (HaproxyProbe("/s", backend="be_web"), True, "2 of 3 servers UP"),
    (HaproxyProbe("/s", backend="be_web", min_up=3), False, "2 of 3 servers UP, need 3"),
    (HaproxyProbe("/s", backend="nope"), False, "no backend nope"),
    (HaproxyProbe("/s", frontend="fe_web"), True, "haproxy answers"),
    (HaproxyProbe("/s", frontend="fe_x"), False, "no frontend fe_x"),
    (HaproxyProbe("/s"), True, "haproxy answers"),
])
def test_haproxy_verdict(probe: HaproxyProbe, ok: bool, detail: str) -> None:
    verdict = haproxy_verdict(probe, STAT)
    assert verdict[0] is ok and detail in verdict[1]


def test_haproxy_verdict_on_garbage() -> None:
    assert haproxy_verdict(HaproxyProbe("/s"), "Unknown command\n")[0] is False
    assert haproxy_verdict(HaproxyProbe("/s"), "# a,b\n1,2\n")[0] is False


def test_haproxy_command_over_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "admin.sock")

    async def go() -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readline() == b"show stat\n"
            writer.write(STAT.encode())
            await writer.drain()
            writer.close()
        server = await asyncio.start_unix_server(serve, path)
        async with server:
            return await haproxy_command(path, "show stat", 2)

    assert asyncio.run(go()) == STAT


def test_haproxy_config_keywords() -> None:
    cfg = loads("""vrrp_script chk {
    haproxy_socket /run/haproxy/admin.sock
    haproxy_backend be_web
    haproxy_min_up 2
    interval 1
    weight -50
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress { 10.0.0.1 }
    track_script { chk }
}""")
    s = cfg.scripts["chk"]
    assert s.script is None and s.haproxy == HaproxyProbe("/run/haproxy/admin.sock", "be_web", None, 2)


@pytest.mark.parametrize("text,value", [("5\n", 5), ("-3", -3), ("", 0), ("x", 0)])
def test_read_track_file(tmp_path: Path, text: str, value: int) -> None:
    p = tmp_path / "f"
    p.write_text(text)
    assert read_track_file(p) == value
    assert read_track_file(tmp_path / "missing") == 0


def test_file_watch_reports_changes_by_inotify(tmp_path: Path) -> None:
    path = tmp_path / "weight"
    seen: list[int] = []

    async def go() -> None:
        w = FileWatch(TrackFile("f", LOC, str(path), weight=10, init_file=0), lambda _n, v: seen.append(v))
        w.start()
        await asyncio.sleep(0.05)
        path.write_text("3\n")
        await asyncio.sleep(0.1)
        tmp = tmp_path / "new"
        tmp.write_text("7\n")
        tmp.rename(path)  # replaced atomically, as config tools do
        await asyncio.sleep(0.1)
        w.stop()

    asyncio.run(go())
    assert seen == [3, 7]
