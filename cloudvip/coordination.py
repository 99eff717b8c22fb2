"""What ties instances together at run time: health checks and track files feeding
priorities, notifications, and sync groups. The agent owns one `Coordinator`."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from .config import Config, TrackProcess, TrackRef, VrrpScript, settings_key
from .config.model import SyncGroup as SyncGroupConfig
from .health import Check, FileWatch, make_check
from .notify import Fifo, Notifier, NotifyEvent, run_as_of
from .process_tracking import ProcessWatch
from .scripts import RunAs, ScriptError, ScriptRunner, default_run_as
from .state_machine import Notify, State
from .sync_group import SyncGroup, group_state
from .tracking import TrackState, file_value, weighted

if TYPE_CHECKING:
    from .instance import InstanceRuntime

log = logging.getLogger("cloudvip")


class Coordinator:
    def __init__(self, cfg: Config, instances: dict[str, InstanceRuntime]) -> None:
        self.instances = instances
        self.cfg = cfg
        gd = cfg.global_defs
        self.runner = ScriptRunner(default_run_as(gd.script_user, gd.script_group, gd.enable_script_security),
                                   secure=gd.enable_script_security)
        fifo = None
        if gd.notify_fifo:
            owner = RunAs(gd.notify_fifo_user, gd.notify_fifo_group) if gd.notify_fifo_user else self.runner.run_as
            try:
                fifo = Fifo(gd.notify_fifo, owner if owner.refused is None else RunAs())
            except (OSError, ScriptError) as exc:
                log.error("notify_fifo %s unusable, FIFO notifications off: %s", gd.notify_fifo, exc)
        self.notifier = Notifier(self.runner, fifo)
        self.checks: dict[str, Check] = {}
        self.files: dict[str, FileWatch] = {}
        self.processes: ProcessWatch | None = None
        self.groups: dict[str, SyncGroup] = {}
        self._group_conf: dict[str, SyncGroupConfig] = {}
        self._group_state: dict[str, State | None] = {}
        self._fifo_reader: asyncio.subprocess.Process | None = None

    # ---------- lifecycle ----------
    async def start(self) -> None:
        self.update(self.cfg)
        gd = self.cfg.global_defs
        if gd.notify_fifo and gd.notify_fifo_script and self.notifier.fifo is not None:
            argv = gd.notify_fifo_script.argv + (gd.notify_fifo,)
            try:  # a long-running reader, as the script user like any script (its output is the agent's)
                self._fifo_reader = await self.runner.spawn(argv, run_as_of(gd.notify_fifo_script), output=None)
            except Exception as exc:
                log.error("notify_fifo_script %s cannot run: %s", argv[0], exc)

    def update(self, cfg: Config) -> None:
        """(Re)build checks, file watches and groups; unchanged checks keep running."""
        self.cfg = cfg
        wanted_scripts = {r.name for refs in self._all_refs(cfg, "track_scripts") for r in refs}
        for name in list(self.checks):
            changed = settings_key(cfg.scripts.get(name)) != settings_key(self.checks[name].script)
            if name not in wanted_scripts or changed:
                asyncio.create_task(self.checks.pop(name).stop())
        for name in wanted_scripts - set(self.checks):
            if name in cfg.scripts:
                check = make_check(cfg.scripts[name], self.runner, self._on_check)
                self.checks[name] = check
                check.start()
        wanted_files = {r.name for refs in self._all_refs(cfg, "track_files") for r in refs}
        for name in list(self.files):
            changed = settings_key(cfg.track_files.get(name)) != settings_key(self.files[name].spec)
            if name not in wanted_files or changed:
                self.files.pop(name).stop()
        for name in wanted_files - set(self.files):
            if name in cfg.track_files:
                try:
                    watch = FileWatch(cfg.track_files[name], self._on_file)
                    watch.start()
                    self.files[name] = watch
                except OSError as exc:
                    log.error("track_file %s: cannot watch %s: %s", name, cfg.track_files[name].path, exc)
        self._update_processes(cfg)
        self._group_conf = {g.name: g for g in cfg.sync_groups}
        self.groups = {g.name: SyncGroup(g.name, list(g.members)) for g in cfg.sync_groups}
        for name in self.groups:
            self._group_state.setdefault(name, None)

    def _update_processes(self, cfg: Config) -> None:
        """One /proc scanner for every tracked process (none when nothing tracks one)."""
        wanted = {r.name for refs in self._all_refs(cfg, "track_processes") for r in refs}
        specs = {n: cfg.track_processes[n] for n in wanted if n in cfg.track_processes}
        if not specs:
            if self.processes is not None:
                self.processes.stop()
                self.processes = None
        elif self.processes is None:
            self.processes = ProcessWatch(specs, self._on_process)
            self.processes.start()
        else:
            self.processes.specs = specs

    async def close(self, drain: float = 5.0) -> None:
        for check in self.checks.values():
            await check.stop()
        for watch in self.files.values():
            watch.stop()
        self.checks.clear()
        self.files.clear()
        if self.processes is not None:
            self.processes.stop()
            self.processes = None
        if not await self.notifier.drain(drain):
            log.warning("notify scripts still running at exit: not waiting longer")
        await self.notifier.close()
        if self._fifo_reader is not None and self._fifo_reader.returncode is None:
            self._fifo_reader.terminate()
            await self._fifo_reader.wait()

    # ---------- tracking ----------
    @staticmethod
    def _all_refs(cfg: Config, attr: str) -> list[tuple[TrackRef, ...]]:
        return [getattr(i, attr) for i in cfg.instances] + [getattr(g, attr) for g in cfg.sync_groups]

    def _refs_of(self, instance: str, attr: str) -> list[TrackRef]:
        inst = next((i for i in self.cfg.instances if i.name == instance), None)
        refs = list(getattr(inst, attr)) if inst is not None else []
        group = self.cfg.group_of(instance)
        return refs + (list(getattr(group, attr)) if group is not None else [])

    @staticmethod
    def _weighted(ref: TrackRef, weight: int, reverse: bool, healthy: bool) -> TrackState:
        """A script's or process's state through the reference's weight, else its own."""
        if ref.weight is not None:
            return weighted(ref.weight, healthy, ref.reverse)
        return weighted(weight, healthy, reverse)

    def _script_state(self, script: VrrpScript, ref: TrackRef, healthy: bool) -> TrackState:
        return self._weighted(ref, script.weight, script.weight_reverse, healthy)

    def initial_tracks(self, instance: str) -> dict[str, TrackState]:
        """Track states for an instance about to start, from the checks' current verdicts."""
        out: dict[str, TrackState] = {}
        for ref in self._refs_of(instance, "track_scripts"):
            check = self.checks.get(ref.name)
            if check is not None:
                out[f"script:{ref.name}"] = self._script_state(check.script, ref, check.healthy)
        for ref in self._refs_of(instance, "track_files"):
            watch = self.files.get(ref.name)
            if watch is not None:
                out[f"file:{ref.name}"] = self._file_state(watch, ref)
        for ref in self._refs_of(instance, "track_processes"):
            up = self.processes.up(ref.name) if self.processes is not None else None
            if up is not None:
                out[f"process:{ref.name}"] = self._process_state(self.cfg.track_processes[ref.name], ref, up)
        return out

    def _process_state(self, spec: TrackProcess, ref: TrackRef, up: bool) -> TrackState:
        return self._weighted(ref, spec.weight, spec.reverse, up)

    def _on_process(self, name: str, up: bool) -> None:
        spec = self.cfg.track_processes.get(name)
        if spec is not None:
            self._retrack("track_processes", f"process:{name}", name, lambda ref: self._process_state(spec, ref, up))

    @staticmethod
    def _file_state(watch: FileWatch, ref: TrackRef) -> TrackState:
        if ref.weight is not None:
            return file_value(ref.weight, watch.value, ref.reverse)
        return file_value(watch.spec.weight, watch.value, watch.spec.reverse)

    def _on_check(self, name: str, healthy: bool) -> None:
        check = self.checks.get(name)
        if check is not None:
            self._retrack("track_scripts", f"script:{name}", name,
                          lambda ref: self._script_state(check.script, ref, healthy))

    def _on_file(self, name: str, _value: int) -> None:
        watch = self.files.get(name)
        if watch is not None:
            self._retrack("track_files", f"file:{name}", name, lambda ref: self._file_state(watch, ref))

    def _retrack(self, attr: str, track: str, name: str, state_of: Callable[[TrackRef], TrackState]) -> None:
        """Give every instance (directly or through its sync group) tracking `name` its new state."""
        for rt in list(self.instances.values()):
            for ref in self._refs_of(rt.name, attr):
                if ref.name == name:
                    rt.track(track, state_of(ref))

    # ---------- notifications and sync groups ----------
    def on_notify(self, rt: InstanceRuntime, note: Notify) -> None:
        group = self.cfg.group_of(rt.name)
        inst_event = NotifyEvent("INSTANCE", rt.name, note.new.value, note.priority)
        if group is None:
            self.notifier.emit(inst_event, rt.config.notify)
            return
        if self._group_state.get(group.name) is None and note.new is State.BACKUP:
            self._group_notify(group.name, State.BACKUP)  # keepalived: GROUP BACKUP, then INSTANCE BACKUP
        self.notifier.emit(inst_event, rt.config.notify)
        routers = {m: self.instances[m].router for m in group.members if m in self.instances}
        for member, event in self.groups[group.name].reactions(rt.now(), rt.name, note.old, note.new, routers):
            self.instances[member].handle(event)
        state = group_state(list(routers.values()))
        if state is not self._group_state.get(group.name):
            self._group_notify(group.name, state)

    def on_lower_priority(self, rt: InstanceRuntime) -> None:
        """keepalived's MASTER_RX_LOWER_PRI: notify_master_rx_lower_pri and the FIFO line."""
        self.notifier.emit(NotifyEvent("INSTANCE", rt.name, "MASTER_RX_LOWER_PRI", rt.router.priority),
                           rt.config.notify)

    def _group_notify(self, name: str, state: State) -> None:
        self._group_state[name] = state
        log.info("sync group %s: %s", name, state.value)
        self.notifier.emit(NotifyEvent("GROUP", name, state.value, 0), self._group_conf[name].notify)
