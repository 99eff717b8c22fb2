"""Health checks that weight the election: vrrp_script (a command, or cloudvip's native
HAProxy probe) with keepalived's interval/timeout/fall/rise, and track_file.

Each check runs as its own asyncio task, so a slow or hung check never delays an
advert; it reports only changes of its healthy/failed state (or file value).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from .config.model import HaproxyProbe, TrackFile, VrrpScript
from .scripts import RunAs, ScriptError, ScriptRunner

log = logging.getLogger("cloudvip.health")

HealthCallback = Callable[[str, bool], None]


class HaproxyError(Exception):
    pass


async def haproxy_command(socket_path: str, command: str, timeout: float) -> str:
    """One command over HAProxy's runtime API (stats socket); the answer as text."""
    async def talk() -> str:
        reader, writer = await asyncio.open_unix_connection(socket_path)
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode(errors="replace")
        finally:
            writer.close()
    try:
        return await asyncio.wait_for(talk(), timeout)
    except (OSError, TimeoutError) as exc:
        raise HaproxyError(f"{socket_path}: {exc or 'timed out'}") from None


def haproxy_verdict(probe: HaproxyProbe, stat_csv: str) -> tuple[bool, str]:
    """Judge `show stat` output: the named frontend OPEN, the named backend with at least
    `min_up` servers UP; with neither named, an answering HAProxy is healthy."""
    lines = [ln for ln in stat_csv.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        return False, "no CSV from 'show stat'"
    cols = lines[0][2:].split(",")
    try:
        px, sv, st = cols.index("pxname"), cols.index("svname"), cols.index("status")
    except ValueError:
        return False, "'show stat' has no pxname/svname/status columns"
    rows = [ln.split(",") for ln in lines[1:] if not ln.startswith("#")]
    rows = [r for r in rows if len(r) > max(px, sv, st)]
    if probe.frontend is not None:
        fe = [r for r in rows if r[px] == probe.frontend and r[sv] == "FRONTEND"]
        if not fe:
            return False, f"no frontend {probe.frontend}"
        if fe[0][st] != "OPEN":
            return False, f"frontend {probe.frontend} is {fe[0][st]}"
    if probe.backend is not None:
        servers = [r for r in rows if r[px] == probe.backend and r[sv] not in ("FRONTEND", "BACKEND")]
        if not servers and not any(r[px] == probe.backend for r in rows):
            return False, f"no backend {probe.backend}"
        up = sum(1 for r in servers if r[st].startswith("UP"))
        if up < probe.min_up:
            return False, f"backend {probe.backend}: {up} of {len(servers)} servers UP, need {probe.min_up}"
        return True, f"backend {probe.backend}: {up} of {len(servers)} servers UP"
    return True, "haproxy answers"


class Check:
    """interval/fall/rise around a probe; calls back on every healthy<->failed change."""

    def __init__(self, script: VrrpScript, on_change: HealthCallback) -> None:
        self.script, self.on_change = script, on_change
        self.healthy = not script.init_fail
        self._streak = 0  # consecutive results that disagree with the current state
        self.last_detail = ""
        self.runs = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.script.name

    async def probe(self) -> tuple[bool, str]:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"check-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def record(self, ok: bool, detail: str) -> None:
        """Apply one result with fall/rise; pure apart from the callback."""
        self.runs += 1
        self.last_detail = detail
        if ok == self.healthy:
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= (self.script.rise if ok else self.script.fall):
            self.healthy, self._streak = ok, 0
            log.info("vrrp_script %s: %s (%s)", self.name, "succeeded" if ok else "failed", detail)
            self.on_change(self.name, ok)

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                ok, detail = await self.probe()
            except Exception as exc:  # a check must never die
                ok, detail = False, f"check error: {exc}"
                log.exception("vrrp_script %s: probe failed", self.name)
            self.record(ok, detail)
            await asyncio.sleep(max(0.0, self.script.interval - (time.monotonic() - started)))


class ScriptCheck(Check):
    def __init__(self, script: VrrpScript, runner: ScriptRunner, on_change: HealthCallback) -> None:
        super().__init__(script, on_change)
        self.runner = runner
        self._unrunnable: str | None = None

    async def probe(self) -> tuple[bool, str]:
        assert self.script.script is not None
        run_as = RunAs(self.script.user, self.script.group) if self.script.user else None
        try:
            result = await self.runner.run(self.script.script.argv, self.script.effective_timeout, run_as)
        except ScriptError as exc:
            if self._unrunnable != str(exc):  # logged once per change, not per run
                self._unrunnable = str(exc)
                log.error("vrrp_script %s cannot run: %s", self.name, exc)
            return False, str(exc)
        self._unrunnable = None
        if result.timed_out:
            return False, f"timed out after {self.script.effective_timeout:g} s, killed"
        return result.ok, f"exit {result.returncode}"


class HaproxyCheck(Check):
    async def probe(self) -> tuple[bool, str]:
        probe = self.script.haproxy
        assert probe is not None
        try:
            text = await haproxy_command(probe.socket, "show stat", self.script.effective_timeout)
        except HaproxyError as exc:
            return False, f"haproxy not answering: {exc}"
        return haproxy_verdict(probe, text)


def make_check(script: VrrpScript, runner: ScriptRunner, on_change: HealthCallback) -> Check:
    if script.haproxy is not None:
        return HaproxyCheck(script, on_change)
    return ScriptCheck(script, runner, on_change)


def read_track_file(path: Path) -> int:
    """The number in a track file; missing or not a number counts as 0 (as keepalived)."""
    try:
        text = path.read_text().strip().split()
    except OSError:
        return 0
    try:
        return int(text[0]) if text else 0
    except ValueError:
        return 0


class FileWatch:
    """track_file: re-read on inotify events of its directory (pyroute2's Inotify)."""

    def __init__(self, spec: TrackFile, on_change: Callable[[str, int], None]) -> None:
        self.spec, self.on_change = spec, on_change
        self.path = Path(spec.path)
        if spec.init_file is not None and (spec.overwrite or not self.path.exists()):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{spec.init_file}\n")
        self.value = read_track_file(self.path)
        self._inotify: Any = None

    def start(self) -> None:
        from pyroute2.inotify.inotify_fd import Inotify

        directory = str(self.path.parent)
        ino = Inotify(path=[directory])
        ino.bind()
        # IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM
        ino.register_path(directory, 0x8 | 0x80 | 0x100 | 0x200 | 0x40)
        self._inotify = ino
        asyncio.get_running_loop().add_reader(ino.fd, self._on_event)

    def _on_event(self) -> None:
        ino = self._inotify
        try:
            os.read(ino.fd, 65536)
        except BlockingIOError:
            return
        value = read_track_file(self.path)
        if value != self.value:
            self.value = value
            log.info("track_file %s: %s now reads %d", self.spec.name, self.path, value)
            self.on_change(self.spec.name, value)

    def stop(self) -> None:
        if self._inotify is not None:
            asyncio.get_running_loop().remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
