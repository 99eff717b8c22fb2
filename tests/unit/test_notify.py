"""Notifications in keepalived's formats, run in order per owner."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cloudvip.config.model import Notifiers, ScriptCommand
from cloudvip.notify import Fifo, Notifier, NotifyEvent, commands_for, fifo_line
from cloudvip.config import loads
from cloudvip.scripts import RunAs, ScriptRunner


def cmd(raw: str) -> ScriptCommand:
    return ScriptCommand(raw, tuple(raw.split()))


def test_specific_script_gets_only_its_configured_arguments_then_generic_gets_four() -> None:
    n = Notifiers(master=cmd("/n.sh master"), generic=cmd("/all.sh"))
    ev = NotifyEvent("INSTANCE", "VI_1", "MASTER", 50)
    assert commands_for(n, ev) == [(("/n.sh", "master"), None), (("/all.sh", "INSTANCE", "VI_1", "MASTER", "50"), None)]
    assert commands_for(n, NotifyEvent("INSTANCE", "VI_1", "BACKUP", 90)) == [
        (("/all.sh", "INSTANCE", "VI_1", "BACKUP", "90"), None)]


def test_a_notify_script_runs_as_the_user_its_line_names() -> None:
    cfg = loads('vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n'
                ' notify_master "/n.sh master" nobody nogroup\n notify /all.sh daemon\n}\n')
    n = cfg.instances[0].notify
    assert n.master == ScriptCommand("/n.sh master", ("/n.sh", "master"), "nobody", "nogroup")
    ev = NotifyEvent("INSTANCE", "VI_1", "MASTER", 100)
    assert commands_for(n, ev) == [(("/n.sh", "master"), RunAs("nobody", "nogroup")),
                                   (("/all.sh", "INSTANCE", "VI_1", "MASTER", "100"), RunAs("daemon"))]
    # keepalived reads the word after an unquoted command as the user: said, not hidden
    assert any("/all.sh runs as user 'daemon', as keepalived reads it" in str(d) for d in cfg.diagnostics)


def test_fifo_line_format_matches_keepalived() -> None:
    assert fifo_line(NotifyEvent("INSTANCE", "VI_1", "MASTER", 100)) == 'INSTANCE "VI_1" MASTER 100\n'
    assert fifo_line(NotifyEvent("GROUP", "G1", "STOP", 0)) == 'GROUP "G1" STOP 0\n'


def test_scripts_run_in_order_and_fifo_gets_lines(tmp_path: Path) -> None:
    log = tmp_path / "log"
    s = tmp_path / "n.sh"
    # the first call sleeps: a concurrent runner would log the later states first
    s.write_text(f'#!/bin/sh\n[ "$3" = BACKUP ] && sleep 0.3\necho "$3 $4" >> {log}\n')
    s.chmod(0o755)
    fifo_path = tmp_path / "notify.fifo"

    async def go() -> bytes:
        fifo = Fifo(str(fifo_path))
        reader = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK)
        notifier = Notifier(ScriptRunner(), fifo)
        n = Notifiers(generic=ScriptCommand(str(s), (str(s),)))
        for state, prio in (("BACKUP", 100), ("MASTER", 100), ("FAULT", 100), ("BACKUP", 90)):
            notifier.emit(NotifyEvent("INSTANCE", "VI_1", state, prio), n)
        assert await notifier.drain(5)
        data = os.read(reader, 4096)
        await notifier.close()
        os.close(reader)
        return data

    data = asyncio.run(go())
    assert log.read_text().split("\n")[:-1] == ["BACKUP 100", "MASTER 100", "FAULT 100", "BACKUP 90"]
    assert data.decode().splitlines() == ['INSTANCE "VI_1" BACKUP 100', 'INSTANCE "VI_1" MASTER 100',
                                          'INSTANCE "VI_1" FAULT 100', 'INSTANCE "VI_1" BACKUP 90']


def test_fifo_without_reader_never_blocks(tmp_path: Path) -> None:
    fifo = Fifo(str(tmp_path / "f"))
    for _ in range(20000):  # far more than the pipe holds
        fifo.write('INSTANCE "VI_1" MASTER 100\n')
    assert fifo.dropped > 0
    fifo.close()


def test_a_missing_notify_script_does_not_stop_the_queue(tmp_path: Path) -> None:
    out = tmp_path / "out"
    good = tmp_path / "good.sh"
    good.write_text(f"#!/bin/sh\necho ok >> {out}\n")
    good.chmod(0o755)

    async def go() -> Notifier:
        notifier = Notifier(ScriptRunner())
        n = Notifiers(master=cmd("/nonexistent/notify.sh"), generic=ScriptCommand(str(good), (str(good),)))
        notifier.emit(NotifyEvent("INSTANCE", "VI_1", "MASTER", 100), n)
        notifier.emit(NotifyEvent("INSTANCE", "VI_1", "MASTER", 100), n)
        await notifier.drain(5)
        await notifier.close()
        return notifier

    notifier = asyncio.run(go())
    assert out.read_text() == "ok\nok\n"
    assert notifier.counters["notify_errors"] == 2
