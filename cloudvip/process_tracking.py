"""keepalived's track_process: how many running processes match a `vrrp_track_process`, and
whether that count is up (within [quorum, quorum_max]) once fork_delay / terminate_delay have
passed. Matching and the up/down decision are pure; `ProcessWatch` reads /proc once a second
for every tracked process (keepalived listens to the kernel's process connector instead: up to
a second later here, and no CAP_NET_ADMIN-only netlink socket to hold).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from .config.model import TrackProcess

log = logging.getLogger("cloudvip")
SCAN_EVERY = 1.0  # seconds between /proc scans


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    comm: str  # /proc/PID/stat's name
    argv: tuple[str, ...]  # /proc/PID/cmdline


def _params_match(spec: TrackProcess, params: tuple[str, ...]) -> bool:
    """keepalived's check_params: exact (the same parameters), partial (these first, more may
    follow), initial (these first, the last one may be longer, more may follow)."""
    want = spec.params
    if spec.param_match == "exact":
        return params == want
    if not want:
        return True
    if spec.param_match == "partial":
        return params[:len(want)] == want
    return params[:len(want) - 1] == want[:-1] and len(params) >= len(want) and \
        params[len(want) - 1].startswith(want[-1])


def matches(spec: TrackProcess, proc: ProcessInfo) -> bool:
    if not spec.full_command:
        return proc.comm == spec.process
    if not proc.argv or proc.argv[0] != spec.process:
        return False
    return spec.param_match == "none" or _params_match(spec, proc.argv[1:])


def in_quorum(spec: TrackProcess, count: int) -> bool:
    return count >= spec.quorum and (spec.quorum_max is None or count <= spec.quorum_max)


class Hysteresis:
    """Up or down as the count says, once it has said so for the delay (fork_delay going up,
    terminate_delay going down). `update` returns the new verdict when it changes."""

    def __init__(self, spec: TrackProcess, up: bool) -> None:
        self.spec, self.up = spec, up
        self._since: float | None = None  # when the count began to disagree with `up`

    def update(self, count: int, now: float) -> bool | None:
        wanted = in_quorum(self.spec, count)
        if wanted == self.up:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        if now - self._since < (self.spec.fork_delay if wanted else self.spec.terminate_delay):
            return None
        self.up, self._since = wanted, None
        return wanted


def read_processes(proc: str = "/proc", cmdlines: bool = True) -> Iterator[ProcessInfo]:
    """Every running process (zombies and those gone while reading skipped); its command line
    only if `cmdlines` (reading it touches the process's memory, as keepalived notes)."""
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", "rb") as f:
                stat = f.read()
            cmdline = b""
            if cmdlines:
                with open(f"{entry.path}/cmdline", "rb") as f:
                    cmdline = f.read()
        except OSError:
            continue
        start, end = stat.find(b"("), stat.rfind(b")")
        if start < 0 or end < start or stat[end + 2:end + 3] == b"Z":
            continue
        argv = tuple(a.decode(errors="replace") for a in cmdline.split(b"\0")[:-1]) if cmdline else ()
        yield ProcessInfo(stat[start + 1:end].decode(errors="replace"), argv)


def count(specs: Iterable[TrackProcess], procs: Iterable[ProcessInfo]) -> dict[str, int]:
    specs = list(specs)
    counts = {s.name: 0 for s in specs}
    for p in procs:
        for s in specs:
            if matches(s, p):
                counts[s.name] += 1
    return counts


class ProcessWatch:
    """Scans /proc every SCAN_EVERY seconds for the tracked processes; calls on_change(name, up)
    when one's verdict changes (and once for each at the first scan)."""

    def __init__(self, specs: dict[str, TrackProcess], on_change: Callable[[str, bool], None],
                 proc: str = "/proc") -> None:
        self.specs, self.on_change, self.proc = specs, on_change, proc
        self.state: dict[str, Hysteresis] = {}
        self.counts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def up(self, name: str) -> bool | None:
        h = self.state.get(name)
        return h.up if h is not None else None

    def scan(self, now: float) -> None:
        cmdlines = any(s.full_command for s in self.specs.values())
        self.counts = count(self.specs.values(), read_processes(self.proc, cmdlines))
        for name, spec in self.specs.items():
            h = self.state.get(name)
            if h is None or h.spec != spec:
                self.state[name] = Hysteresis(spec, in_quorum(spec, self.counts[name]))
                self.on_change(name, self.state[name].up)
                continue
            changed = h.update(self.counts[name], now)
            if changed is not None:
                log.info("track_process %s: %s (%d running)", name, "up" if changed else "down", self.counts[name])
                self.on_change(name, changed)
        for name in set(self.state) - set(self.specs):
            del self.state[name]

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.scan(loop.time())
        self._task = asyncio.create_task(self._run(), name="track-process")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SCAN_EVERY)
            try:
                self.scan(loop.time())
            except OSError as exc:
                log.warning("track_process: cannot read %s: %s", self.proc, exc)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
