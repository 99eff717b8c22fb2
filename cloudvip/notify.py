"""keepalived-compatible notifications: notify_* scripts and the notify_fifo.

What is run and written is decided by pure functions (`commands_for`, `fifo_line`);
`Notifier` carries it out: FIFO lines at once, scripts one after the other per
instance or group (keepalived forks them unordered; users asked for order), never
blocking VRRP: a slow script only delays the next notification of the same owner.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .config.model import Notifiers, ScriptCommand
from .scripts import RunAs, ScriptError, ScriptRunner

log = logging.getLogger("cloudvip.notify")
NOTIFY_TIMEOUT = 60.0  # a notify script that hangs longer is killed so later ones still run


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    kind: str  # INSTANCE or GROUP
    name: str
    state: str  # BACKUP, MASTER, FAULT, STOP; or the event MASTER_RX_LOWER_PRI
    priority: int  # effective priority; always 0 for groups, as keepalived reports


#: a command to run: its argv, and whom to run it as (None: the default script user)
Command = tuple[tuple[str, ...], RunAs | None]


def run_as_of(cmd: ScriptCommand) -> RunAs | None:
    return RunAs(cmd.user, cmd.group) if cmd.user is not None else None


def commands_for(notifiers: Notifiers, ev: NotifyEvent) -> list[Command]:
    """The state's own script with its configured arguments only, then the generic
    `notify` script with TYPE NAME STATE PRIORITY appended (keepalived's argv); each as
    the user it names, or the default script user. A master hearing a lower priority runs
    notify_master_rx_lower_pri only (keepalived calls no generic script for it)."""
    specific = {"MASTER": notifiers.master, "BACKUP": notifiers.backup, "FAULT": notifiers.fault,
                "STOP": notifiers.stop, "MASTER_RX_LOWER_PRI": notifiers.master_rx_lower_pri}.get(ev.state)
    cmds = [(specific.argv, run_as_of(specific))] if specific is not None else []
    if notifiers.generic is not None and ev.state != "MASTER_RX_LOWER_PRI":
        cmds.append((notifiers.generic.argv + (ev.kind, ev.name, ev.state, str(ev.priority)),
                     run_as_of(notifiers.generic)))
    return cmds


def fifo_line(ev: NotifyEvent) -> str:
    return f'{ev.kind} "{ev.name}" {ev.state} {ev.priority}\n'


class Fifo:
    """keepalived's notify_fifo: created if missing as keepalived does (mode 0644, owned by the
    FIFO's user: its notify_fifo_script, run as that user, reads it), held open read-write so
    writes never block or fail for lack of a reader; a full pipe drops the line (counted)."""

    def __init__(self, path: str, owner: RunAs | None = None) -> None:
        self.path = Path(path)
        self.dropped = 0
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(self.path, 0o644)
            uid, gid = (owner or RunAs()).ids()
            if uid is not None and uid != os.geteuid():
                os.chown(self.path, uid, -1 if gid is None else gid)
        elif not stat.S_ISFIFO(self.path.stat().st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a FIFO")
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def write(self, line: str) -> None:
        try:
            os.write(self.fd, line.encode())
        except BlockingIOError:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("notify_fifo %s is full (nobody reading?): %d line(s) dropped", self.path, self.dropped)

    def close(self) -> None:
        os.close(self.fd)


class Notifier:
    def __init__(self, runner: ScriptRunner, fifo: Fifo | None = None, timeout: float = NOTIFY_TIMEOUT) -> None:
        self.runner, self.fifo, self.timeout = runner, fifo, timeout
        self.counters: Counter[str] = Counter()
        self._queues: dict[tuple[str, str], asyncio.Queue[Command | None]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._failing: set[str] = set()  # scripts that could not run: logged once per change

    def emit(self, ev: NotifyEvent, notifiers: Notifiers) -> None:
        if self.fifo is not None:
            self.fifo.write(fifo_line(ev))
        for cmd in commands_for(notifiers, ev):
            self._queue((ev.kind, ev.name)).put_nowait(cmd)

    def _queue(self, owner: tuple[str, str]) -> asyncio.Queue[Command | None]:
        if owner not in self._queues:
            q: asyncio.Queue[Command | None] = asyncio.Queue()
            self._queues[owner] = q
            self._workers.append(asyncio.create_task(self._work(owner, q), name=f"notify-{owner[1]}"))
        return self._queues[owner]

    async def _work(self, owner: tuple[str, str], q: asyncio.Queue[Command | None]) -> None:
        while (cmd := await q.get()) is not None:
            try:
                await self._run(owner, *cmd)
            finally:
                q.task_done()
        q.task_done()

    async def _run(self, owner: tuple[str, str], argv: tuple[str, ...], run_as: RunAs | None) -> None:
        try:
            result = await self.runner.run(argv, self.timeout, run_as)
        except ScriptError as exc:
            self.counters["notify_errors"] += 1
            if argv[0] not in self._failing:
                self._failing.add(argv[0])
                log.error("%s %s: notify script cannot run: %s", owner[0].lower(), owner[1], exc)
            return
        self._failing.discard(argv[0])
        self.counters["notify_runs"] += 1
        if result.timed_out:
            self.counters["notify_timeouts"] += 1
            log.error("%s %s: notify script %s killed after %.0f s", owner[0].lower(), owner[1],
                      " ".join(argv), self.timeout)
        elif not result.ok:
            log.warning("%s %s: notify script %s exited %s", owner[0].lower(), owner[1], " ".join(argv),
                        result.returncode)

    async def drain(self, timeout: float) -> bool:
        """Wait for queued scripts (on shutdown, so notify_stop runs); False on timeout."""
        try:
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues.values())), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        for q in self._queues.values():
            q.put_nowait(None)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self.fifo is not None:
            self.fifo.close()
