"""`cloudvip companion`: stock keepalived keeps doing VRRP; this daemon moves the cloud VIP.

It reads the same keepalived.conf, builds a provider and a VipMover for every vrrp_instance
with a `cloud` block (keepalived manages the host addresses itself, so the providers leave the
host alone), and takes keepalived's events from two places: its own unix socket, where
`cloudvip notify` (keepalived's notify script) hands them over, and keepalived's notify_fifo.
Each instance's moves are serialized, the latest state wins (a MASTER->BACKUP->MASTER burst
costs one move, never out of order), with the agent's retries and reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
from pathlib import Path

from .companion_events import Event, EventError, State, parse_line
from .config import Config, ConfigError, VrrpInstance
from .hostnet import HostNetwork
from .provider import ProviderContext, load_checked, load_provider, provider_name
from .service import ServiceManager
from .vip_mover import VipMover

log = logging.getLogger("cloudvip")
FIFO_CHECK = 2.0  # seconds between checks that the fifo is still the one keepalived writes


def cloud_instances(cfg: Config) -> list[VrrpInstance]:
    return [inst for inst in cfg.instances if inst.cloud is not None]


async def build_mover(cfg: Config, inst: VrrpInstance, host: HostNetwork) -> VipMover:
    """A started provider (host left to keepalived) behind a mover for one instance."""
    ilog = logging.getLogger(f"cloudvip.{inst.name}")
    ctx = ProviderContext(inst, cfg.global_defs, host, ilog, manage_host=False)
    provider = load_provider(provider_name(inst))(ctx)
    await provider.start()
    if provider.peer_refresh:
        try:
            await provider.discover_peers()
        except Exception as exc:  # classification falls back to the configured peers
            ilog.warning("%s: peer discovery failed: %s", inst.name, exc)
    mover = VipMover(inst.name, provider, ilog)
    mover.start()
    return mover


class Companion:
    def __init__(self, path: Path, config_id: str | None, socket: str, fifo: str | None = None,
                 metrics: str | None = None) -> None:
        self.path, self.config_id, self.socket, self.fifo = path, config_id, socket, fifo
        self.metrics = metrics
        self.movers: dict[str, VipMover] = {}
        self.host = HostNetwork()
        self.service = ServiceManager()
        self._stop = asyncio.Event()

    def handle(self, ev: Event, source: str) -> str:
        """Hand an event to its instance's mover; the answer for the notify client."""
        if ev.kind == "GROUP":
            return "ignored: a group event (its instances report their own)"
        mover = self.movers.get(ev.name)
        if mover is None:
            return f"ignored: {ev.name} has no cloud block"
        hold = ev.state is State.MASTER
        log.info("%s: keepalived says %s (%s): %s", ev.name, ev.state.value, source,
                 "taking the VIP" if hold else "not holding it")
        mover.want(hold)
        return f"queued {ev.name} {ev.state.value}"

    async def run(self) -> int:
        try:
            cfg = load_checked(self.path, self.config_id)
        except ConfigError as exc:
            for diag in exc.diagnostics:
                log.error("config: %s", diag)
            return 1
        instances = cloud_instances(cfg)
        if not instances:
            log.error("%s: no vrrp_instance has a cloud block: nothing for a companion to do", self.path)
            return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        server: asyncio.AbstractServer | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.host.open()
            for inst in instances:
                self.movers[inst.name] = await build_mover(cfg, inst, self.host)
                await self._sync(inst)
            server = await self._listen()
            if self.metrics:
                from .metrics import RuntimeCollector, serve

                serve(self.metrics, RuntimeCollector(dict, lambda: self.movers))
            fifo = self.fifo or cfg.global_defs.notify_fifo
            if fifo:
                tasks.append(asyncio.create_task(self._read_fifo(fifo), name="notify-fifo"))
            log.info("cloudvip companion: %d instance(s) from %s; events on %s%s", len(instances), self.path,
                     self.socket, f" and {fifo}" if fifo else "")
            self.service.ready(f"{len(instances)} instance(s); events on {self.socket}")
            await self._stop.wait()
            self.service.stopping()
            return 0
        except Exception as exc:
            log.error("cloudvip companion: %s", exc)
            return 1
        finally:
            for task in tasks:
                task.cancel()
            if server is not None:
                server.close()
                Path(self.socket).unlink(missing_ok=True)
            for mover in self.movers.values():
                await mover.stop()
                await mover.provider.close()
            await self.host.close()

    async def _sync(self, inst: VrrpInstance) -> None:
        """Started (or restarted) while keepalived runs: if it is master already (it carries
        the addresses), take the VIP now rather than wait for the next transition."""
        if inst.vips and await self.host.carries(inst):
            log.info("%s: keepalived is master (it carries the VIP): taking the VIP", inst.name)
            self.movers[inst.name].want(True)

    # ---------- the socket `cloudvip notify` talks to ----------
    async def _listen(self) -> asyncio.AbstractServer:
        directory = os.path.dirname(self.socket)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.path.exists(self.socket):
            if await _answers(self.socket):
                raise RuntimeError(f"another companion already listens on {self.socket}")
            os.unlink(self.socket)  # left behind by a companion that died
        old = os.umask(0o177)  # root-only from the start: events move the VIP
        try:
            server = await asyncio.start_unix_server(self._client, path=self.socket)
        finally:
            os.umask(old)
        return server

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 2.0)).decode(errors="replace").strip()
            try:
                answer = self.handle(parse_line(line), "notify")
            except EventError as exc:
                answer = f"error: {exc}"
                log.warning("notify: %s", exc)
            writer.write(answer.encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    # ---------- keepalived's notify_fifo ----------
    async def _read_fifo(self, path: str) -> None:
        """Read keepalived's fifo lines for ever; reopen it when keepalived replaced it."""
        while True:
            try:
                await self._read_fifo_once(path)
            except OSError as exc:
                log.warning("notify_fifo %s: %s; retrying", path, exc)
            await asyncio.sleep(FIFO_CHECK)

    async def _read_fifo_once(self, path: str) -> None:
        if not os.path.exists(path):
            os.mkfifo(path, 0o600)
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            raise OSError(f"{path} is not a fifo")
        # read and write: keepalived restarting (closing its end) is then no end of file for us
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        inode = os.fstat(fd).st_ino
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(fd, "rb", buffering=0))
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readline(), FIFO_CHECK)
                except TimeoutError:
                    try:
                        if os.stat(path).st_ino != inode:
                            return  # keepalived made a new fifo: read that one
                    except FileNotFoundError:
                        return
                    continue
                if not raw:
                    return
                line = raw.decode(errors="replace").strip()
                try:
                    self.handle(parse_line(line), "notify_fifo")
                except EventError as exc:
                    log.debug("notify_fifo: %s", exc)  # e.g. keepalived's own non-VRRP lines
        finally:
            transport.close()


async def _answers(path: str) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def move_once(path: Path, config_id: str | None, ev: Event, timeout: float = 30.0) -> int:
    """`cloudvip notify` without a companion: do this one move here, with the mover's retries."""
    try:
        cfg = load_checked(path, config_id)
    except ConfigError as exc:
        for diag in exc.diagnostics:
            log.error("config: %s", diag)
        return 1
    inst = next((i for i in cloud_instances(cfg) if i.name == ev.name), None)
    if ev.kind == "GROUP" or inst is None:
        log.info("%s: no cloud block for it in %s: nothing to move", ev.name, path)
        return 0
    host = HostNetwork()
    try:
        await host.open()
        mover = await build_mover(cfg, inst, host)
        try:
            mover.want(ev.state is State.MASTER)
            if not await mover.settle(timeout):
                log.error("%s: the move did not finish within %.0f s", ev.name, timeout)
                return 1
            return 0
        finally:
            await mover.stop()
            await mover.provider.close()
    finally:
        await host.close()
