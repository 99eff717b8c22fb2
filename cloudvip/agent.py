"""`cloudvip run`: all instances of a config in one asyncio process.

SIGTERM/SIGINT: priority-0 adverts, VIPs released, exit 0. SIGHUP: reload; what can change in
place does (a master stays master), only a changed identity (interface, VRID, VIPs ...) restarts
an instance.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, GlobalDefs, VrrpInstance, settings_key
from .coordination import Coordinator
from .hostnet import HostNetwork, Link
from .logs import worth_logging
from .instance import InstanceRuntime, router_params
from .provider import ProviderContext, load_checked, load_provider, provider_name, within_deadline
from .auth_state import state_path
from .control import ControlServer
from .service import ServiceManager
from .tracking import FAULT, OK, weighted
from .transport import Channel
from .vip_mover import VipMover

log = logging.getLogger("cloudvip")
SHUTDOWN_GRACE = 5.0  # seconds to let movers release VIPs on exit
#: what a reload can only apply by restarting the instance (a priority-0 handover): its identity on
#: the wire and on the host
RESTART_SETTINGS = ("interface", "vrid", "version", "unicast_src_ip", "unicast_ttl", "vips", "vips_excluded")
PEERS_TRACK = "peers"  # the tracked object that holds an instance in FAULT while no peer is known
PROVIDER_RETRY_FIRST, PROVIDER_RETRY_MAX = 1.0, 60.0  # seconds between tries to start a provider


def changed_settings(old: VrrpInstance, new: VrrpInstance) -> list[str]:
    return [f.name for f in dataclasses.fields(new)
            if f.name != "loc" and settings_key(getattr(old, f.name)) != settings_key(getattr(new, f.name))]


def restart_reasons(old: VrrpInstance, new: VrrpInstance) -> list[str]:
    """The changed settings a reload cannot apply in place (empty: it can)."""
    reasons = [name for name in changed_settings(old, new) if name in RESTART_SETTINGS]
    if provider_name(old) != provider_name(new):
        reasons.append(f"provider ({provider_name(old)} -> {provider_name(new)})")
    return reasons


@dataclass
class Waiting:
    """An instance whose provider could not start: out of the election (FAULT, as its peers see
    it: no adverts) while its start is retried with backoff; every other instance runs."""

    config: VrrpInstance
    reason: str
    since: float = field(default_factory=time.time)
    attempts: int = 1
    task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        return {"name": self.config.name, "state": "FAULT", "reason": self.reason, "since": self.since,
                "attempts": self.attempts}


class StartupError(Exception):
    pass


class ProviderStartError(StartupError):
    """The instance's provider could not start (the cloud API or metadata unreachable, a bad token)."""


def load_config(path: Path, config_id: str | None) -> Config:
    """Load and fully validate (providers included); raises ConfigError."""
    cfg = load_checked(path, config_id)
    for diag in cfg.diagnostics:
        log.warning("config: %s", diag)
    return cfg


def startup_delay(gdefs: GlobalDefs, uptime_file: Path = Path("/proc/uptime")) -> float:
    """keepalived's: vrrp_startup_delay from now, or vrrp_delay_after_boot counted from the boot
    (nothing once the system has been up that long); the longer one."""
    after_boot = 0.0
    if gdefs.delay_after_boot:
        try:
            after_boot = max(0.0, gdefs.delay_after_boot - float(uptime_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError) as exc:
            log.warning("vrrp_delay_after_boot ignored: cannot read the uptime (%s)", exc)
    return max(gdefs.startup_delay, after_boot)


class Agent:
    def __init__(self, path: Path, config_id: str | None = None, control: str | None = None,
                 metrics: str | None = None) -> None:
        """control: the control socket's path (None: no control socket); metrics: [ADDR:]PORT
        for Prometheus (None: off)."""
        self.path, self.config_id, self.metrics = path, config_id, metrics
        self.control = ControlServer(control, {}) if control else None
        self.host = HostNetwork()
        self.instances: dict[str, InstanceRuntime] = {}
        self.channels: dict[tuple[str, str, bool, bool, int], Channel] = {}
        self._stop = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None
        self._started = False  # until every instance has started
        self._no_master_before = 0.0  # the loop's time when the startup delay ends
        self.waiting: dict[str, Waiting] = {}  # instances whose provider could not start yet
        self._reload_pending = False  # a SIGHUP came while starting or reloading
        self.config: Config | None = None
        self.coordinator: Coordinator | None = None
        self._peer_tasks: dict[str, asyncio.Task[None]] = {}
        self.service = ServiceManager()

    # ---------- lifecycle ----------
    async def run(self) -> int:
        # before anything slow: a SIGHUP while starting is a reload once started (not the default
        # action, the end of the process), a SIGTERM stops the start and releases what was taken
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        try:
            self.config = load_config(self.path, self.config_id)
        except ConfigError as exc:
            for diag in exc.diagnostics:
                log.error("config: %s", diag)
            return 1
        if not self.config.instances:
            log.warning("%s has no vrrp_instance: nothing for cloudvip to run", self.path)
            return 0
        delay = startup_delay(self.config.global_defs)
        self._no_master_before = loop.time() + delay
        if delay:
            log.info("no instance becomes master for the next %.1f s (vrrp_startup_delay / vrrp_delay_after_boot)",
                     delay)
        starting = asyncio.create_task(self._start(loop), name="start")
        stopping = asyncio.create_task(self._stop.wait(), name="stop-during-start")
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            log.info("stopped while starting: releasing what was taken")
            await self._shutdown()
            return 0
        try:
            starting.result()
        except (StartupError, RuntimeError, OSError, ValueError) as exc:
            log.error("%s", exc)
            await self._shutdown()
            return 1
        self._started = True
        log.info("cloudvip running %d instance(s) from %s (pid %d)", len(self.instances), self.path, os.getpid())
        self.service.ready(f"{len(self.instances)} instance(s) from {self.path}")  # sockets and providers up
        if self._reload_pending:
            self._request_reload()
        await self._stop.wait()
        self.service.stopping()
        if self.control is not None:
            self.control.close()
        log.info("stopping: handing over with priority 0")
        await self._shutdown()
        return 0

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.config is not None
        await self.host.open()
        self.coordinator = Coordinator(self.config, self.instances)
        await self.coordinator.start()
        for inst in self.config.instances:
            await self._add_or_wait(inst)
        await self.host.watch_links(self._on_link)
        if self.control is not None:
            self.control.instances, self.control.waiting = self.instances, self.waiting
            await self.control.start()
        if self.metrics:
            from .metrics import RuntimeCollector, serve

            serve(self.metrics, RuntimeCollector(lambda: self.instances,
                                                 lambda: {n: rt.mover for n, rt in self.instances.items()}, loop,
                                                 waiting=lambda: self.waiting))

    def stop(self) -> None:
        self._stop.set()

    async def _shutdown(self) -> None:
        self._stop_waiting()
        for rt in list(self.instances.values()):
            rt.shutdown()
        await self._settle_and_close(list(self.instances.values()))
        self.instances.clear()
        if self.coordinator is not None:
            await self.coordinator.close()
        for ch in self.channels.values():
            ch.close()
        self.channels.clear()
        await self.host.close()

    async def _settle_and_close(self, runtimes: list[InstanceRuntime]) -> None:
        for rt in runtimes:
            task = self._peer_tasks.pop(rt.name, None)
            if task is not None:
                task.cancel()
        results = await asyncio.gather(*(rt.mover.finish(SHUTDOWN_GRACE) for rt in runtimes))
        for rt, ok in zip(runtimes, results, strict=True):
            if not ok:
                log.error("%s: VIP release did not finish within %.0f s", rt.name, SHUTDOWN_GRACE)
            await rt.mover.provider.close()

    # ---------- building instances ----------
    async def _add_instance(self, inst: VrrpInstance) -> InstanceRuntime:
        try:
            link = await self.host.link(inst.interface)
        except LookupError as exc:
            raise StartupError(f"{inst.name}: interface {inst.interface}: {exc}") from None
        vips = {v.address for v in inst.vips + inst.vips_excluded}
        local = inst.unicast_src_ip or await self.host.primary_address(link.index, inst.family, vips)
        if local is None:
            raise StartupError(f"{inst.name}: {inst.interface} has no IPv{inst.family} address to send "
                               "VRRP from; add one or set unicast_src_ip")
        ilog = logging.getLogger(f"cloudvip.{inst.name}")
        provider = load_provider(provider_name(inst))(ProviderContext(inst, self._gdefs(), self.host, ilog))
        try:
            await within_deadline(provider, "start", provider.start())
        except Exception as exc:
            try:
                await provider.close()
            except Exception:  # half started: nothing of it must stop the retry
                ilog.debug("%s: closing the provider that failed to start", inst.name, exc_info=True)
            raise ProviderStartError(f"{inst.name}: provider {provider.name} failed to start: {exc}") from exc
        discovered: list[Any] = []
        if provider.peer_refresh:
            try:
                discovered = await within_deadline(provider, "peer discovery", provider.discover_peers())
                ilog.info("%s: peers found in the cloud: %s", inst.name, ", ".join(map(str, discovered)) or "none")
            except Exception as exc:  # start with the configured peers; the refresh retries
                ilog.warning("%s: peer discovery failed: %s", inst.name, exc)
        channel = self._channel(inst, link, local, discovering=bool(provider.peer_refresh))
        mover = VipMover(inst.name, provider, ilog)
        mover.start()
        assert self.coordinator is not None
        hold = max(0.0, self._no_master_before - asyncio.get_running_loop().time())
        rt = InstanceRuntime(inst, router_params(inst, local, discovered, bool(provider.peer_refresh), hold),
                             channel, mover, ilog, self.coordinator.on_notify)
        rt.on_lower_priority = self.coordinator.on_lower_priority
        if inst.auth_hmac is not None:
            rt.set_auth(inst.auth_hmac, state_path(self.path, inst.name))
        if provider.peer_refresh:
            self._peer_tasks[inst.name] = asyncio.create_task(
                self._refresh_peers(rt, local, provider.peer_refresh), name=f"peers-{inst.name}")
        self.instances[inst.name] = rt
        for track_name, state in self.coordinator.initial_tracks(inst.name).items():
            rt.track(track_name, state)
        if provider.peer_refresh:
            self._track_peers(rt)
        # the links as they are now, then every change from link events
        for ref_name, state in (await self._current_link_states(inst, {link.name: link.up})).items():
            rt.track(ref_name, state)
        rt.start()
        return rt

    async def _current_link_states(self, inst: VrrpInstance, known: dict[str, bool]) -> dict[str, Any]:
        """_link_states() for the instance's interface and track_interface entries as they are now
        (`known`: links already read)."""
        up = dict(known)
        for name in (inst.interface, *(ref.name for ref in inst.track_interfaces)):
            if name not in up:
                try:
                    up[name] = (await self.host.link(name)).up
                except LookupError:  # a missing interface is a down one
                    up[name] = False
        return self._link_states(inst, up)

    async def _add_or_wait(self, inst: VrrpInstance) -> None:
        """Start the instance; if its provider cannot start, it waits out of the election while
        the start is retried, and the others run."""
        try:
            await self._add_instance(inst)
        except ProviderStartError as exc:
            log.error("%s; %s stays out of the election (FAULT) and its start is retried", exc, inst.name)
            waiting = Waiting(inst, str(exc))
            self.waiting[inst.name] = waiting
            waiting.task = asyncio.create_task(self._retry_start(waiting), name=f"start-{inst.name}")

    async def _retry_start(self, waiting: Waiting) -> None:
        delay = PROVIDER_RETRY_FIRST
        while True:
            await asyncio.sleep(delay)
            delay = min(2 * delay, PROVIDER_RETRY_MAX)
            waiting.attempts += 1
            try:
                await self._add_instance(waiting.config)
            except StartupError as exc:
                if str(exc) != waiting.reason or worth_logging(waiting.attempts):
                    log.warning("%s (attempt %d; next in %.0f s)", exc, waiting.attempts, delay)
                waiting.reason = str(exc)
                continue
            self.waiting.pop(waiting.config.name, None)
            log.info("%s: provider started (attempt %d): joining the election", waiting.config.name,
                     waiting.attempts)
            return

    def _stop_waiting(self) -> None:
        for waiting in self.waiting.values():
            if waiting.task is not None:
                waiting.task.cancel()
        self.waiting.clear()

    def _gdefs(self) -> Any:
        assert self.config is not None
        return self.config.global_defs

    @staticmethod
    def _track_peers(rt: InstanceRuntime) -> None:
        """Peers from the cloud: none known yet, the instance stays out of the election (FAULT,
        tracked as "peers") rather than accept anyone or take the VIP alone."""
        known = bool(rt.router.params.peers)
        if not known and PEERS_TRACK not in rt.router.tracks:
            rt.log.warning("%s: no peer known yet (discovery found none): FAULT until one is", rt.name)
        rt.track(PEERS_TRACK, OK if known else FAULT)

    async def _refresh_peers(self, rt: InstanceRuntime, local: Any, every: float) -> None:
        provider = rt.mover.provider
        while True:
            await asyncio.sleep(every)
            try:
                found = await within_deadline(provider, "peer discovery", provider.discover_peers())
            except Exception as exc:
                rt.log.warning("%s: peer discovery failed: %s; keeping the peers known", rt.name, exc)
                continue
            params = router_params(rt.config, local, found, discovering=True)
            if not found and rt.router.params.peers:
                rt.log.warning("%s: peer discovery found nobody; keeping the last peers known (%s)", rt.name,
                               ", ".join(map(str, rt.router.params.peers)))
                continue
            if params.peers != rt.router.params.peers:
                rt.log.info("%s: peers now %s", rt.name, ", ".join(map(str, params.peers)) or "none")
                rt.set_peers(params)
            self._track_peers(rt)

    def _channel(self, inst: VrrpInstance, link: Link, local: Any, discovering: bool = False) -> Channel:
        multicast = not inst.unicast_peers and not discovering
        # binding would filter out multicast: there the source is chosen with IP_MULTICAST_IF
        bind = inst.unicast_src_ip is not None and not multicast
        key = (link.name, str(local), bind, multicast, inst.unicast_ttl)
        if key not in self.channels:
            try:
                ch = Channel(link.name, link.index, local, bind=bind, multicast=multicast, ttl=inst.unicast_ttl)
            except OSError as exc:
                raise StartupError(f"{inst.name}: cannot open VRRP socket on {link.name} "
                                   f"from {local}: {exc}") from None
            ch.start(asyncio.get_running_loop())
            self.channels[key] = ch
        return self.channels[key]

    # ---------- link tracking ----------
    @staticmethod
    def _link_states(inst: VrrpInstance, up: dict[str, bool]) -> dict[str, Any]:
        """Track states for the links we know about: the instance's own interface (FAULT when
        down, unless dont_track_primary) and its track_interface entries."""
        states: dict[str, Any] = {}
        if inst.interface in up and not inst.dont_track_primary:
            states[f"interface:{inst.interface}"] = weighted(0, up[inst.interface])
        for ref in inst.track_interfaces:
            if ref.name in up:
                states[f"interface:{ref.name}"] = weighted(ref.weight or 0, up[ref.name], ref.reverse)
        return states

    def _on_link(self, link: Link) -> None:
        for rt in self.instances.values():
            for name, state in self._link_states(rt.config, {link.name: link.up}).items():
                rt.track(name, state)

    # ---------- reload ----------
    def _request_reload(self) -> None:
        """SIGHUP. While starting, or while a reload runs, it is remembered (once: a reload reads
        the file as it is then) and carried out when that is done, never dropped."""
        if not self._started or (self._reloading is not None and not self._reloading.done()):
            if not self._reload_pending:
                log.info("reload requested while %s: it follows", "reloading" if self._started else "starting")
            self._reload_pending = True
            return
        self._reloading = asyncio.create_task(self.reload(), name="reload")

    async def reload(self) -> None:
        self._reload_pending = True
        while self._reload_pending and not self._stop.is_set():
            self._reload_pending = False
            self.service.reloading()
            try:
                await self._reload()
            finally:
                self.service.ready(f"{len(self.instances)} instance(s) from {self.path}")

    async def _reload(self) -> None:
        log.info("reloading %s", self.path)
        try:
            cfg = load_config(self.path, self.config_id)
        except ConfigError as exc:
            for diag in exc.diagnostics:
                log.error("config: %s", diag)
            log.error("reload aborted: keeping the running configuration")
            return
        self.config = cfg
        assert self.coordinator is not None
        self.coordinator.update(cfg)
        self._stop_waiting()  # tried again below with the new settings, at once
        wanted = {inst.name: inst for inst in cfg.instances}
        gone: list[InstanceRuntime] = []
        changed: list[tuple[InstanceRuntime, VrrpInstance]] = []
        for name, rt in self.instances.items():
            new = wanted.get(name)
            if new is None:
                gone.append(rt)
                continue
            forcing = restart_reasons(rt.config, new)
            if forcing:
                log.info("%s: %s changed: restarting the instance", name, ", ".join(forcing))
                gone.append(rt)
            elif settings_key(new) != settings_key(rt.config):
                changed.append((rt, new))
        for rt in gone:
            rt.shutdown()
        await self._settle_and_close(gone)
        for rt in gone:
            del self.instances[rt.name]
        kept = len(self.instances)
        for rt, new in changed:
            await self._update_in_place(rt, new)
        for rt in self.instances.values():  # new keys, modes and windows take effect without a restart
            if rt.config.auth_hmac is not None:
                rt.set_auth(rt.config.auth_hmac, state_path(self.path, rt.name))
            elif rt.auth is not None:
                rt.set_auth(None)
        for name, inst in wanted.items():
            if name not in self.instances:
                try:
                    await self._add_or_wait(inst)
                except StartupError as exc:
                    log.error("reload: %s", exc)
        for key, ch in list(self.channels.items()):  # sockets no instance uses any more
            if not ch.handlers:
                ch.close()
                del self.channels[key]
        log.info("reload done: %d kept, %d restarted or removed, %d started, %d updated in place", kept, len(gone),
                 len(self.instances) - kept, len(changed))

    async def _update_in_place(self, rt: InstanceRuntime, new: VrrpInstance) -> None:
        """Apply a changed instance without a restart (no priority-0 advert, no failover):
        notify scripts, tracked objects and weights, priority, timers, preemption, peers,
        authentication; a changed cloud block gets a new provider behind a new mover."""
        old = rt.config
        log.info("%s: %s changed: applied in place", rt.name, ", ".join(changed_settings(old, new)))
        if settings_key(old.cloud) != settings_key(new.cloud):
            await self._replace_provider(rt, new)
        configured = {p.address for p in old.unicast_peers}
        discovered = [a for a in rt.router.params.peers if a not in configured]
        rt.reconfigure(new, router_params(new, rt.router.params.primary_address, discovered,
                                          bool(rt.mover.provider.peer_refresh)))
        assert self.coordinator is not None
        tracks = dict(self.coordinator.initial_tracks(rt.name))
        tracks.update(await self._current_link_states(new, {}))
        for name in list(rt.router.tracks):
            if name.split(":", 1)[0] in ("script", "file", "interface", "process") and name not in tracks:
                rt.untrack(name)
        for name, state in tracks.items():
            rt.track(name, state)

    async def _replace_provider(self, rt: InstanceRuntime, new: VrrpInstance) -> None:
        """The cloud block's settings changed: start a provider with them, then hand the old
        mover's state to a new one; if it cannot start, the old one goes on (and says so)."""
        ilog = logging.getLogger(f"cloudvip.{new.name}")
        provider = load_provider(provider_name(new))(ProviderContext(new, self._gdefs(), self.host, ilog))
        try:
            await within_deadline(provider, "start", provider.start())
        except Exception as exc:
            log.error("reload: %s: the new %s settings do not start (%s): keeping the running provider",
                      new.name, provider.name, exc)
            await provider.close()
            return
        old_mover = rt.mover
        await old_mover.stop()
        mover = VipMover(new.name, provider, ilog)
        rt.replace_mover(mover)
        mover.start(previous=old_mover)
        await old_mover.provider.close()
        task = self._peer_tasks.pop(rt.name, None)
        if task is not None:
            task.cancel()
        if provider.peer_refresh:
            self._peer_tasks[rt.name] = asyncio.create_task(
                self._refresh_peers(rt, rt.router.params.primary_address, provider.peer_refresh),
                name=f"peers-{rt.name}")
