"""`cloudvip companion`: stock keepalived keeps doing VRRP; this daemon moves the cloud VIP.

It reads its companion file (the cloud blocks) with the keepalived.conf it names, builds a
provider and a VipMover for every instance with a `cloud` block (keepalived manages the host
addresses itself, so the providers leave the host alone), and takes keepalived's events from
two places: its own unix socket, where `cloudvip notify` (keepalived's notify script, run as
keepalived's script user) hands them over, and keepalived's notify_fifo.

An event says *that* keepalived changed, not reliably *what* it is now: keepalived forks its
notify scripts unordered, so two of them can arrive swapped. Keepalived carries the VIPs on the
host exactly while it is master, so the companion follows the host: at each event, and once more
a moment after the last one of a burst. Moves are serialized per instance, the latest state
wins, with the agent's retries and reconciliation. After a partition both nodes claimed the VIP;
when it heals, whichever side learns first sets it right: the master's MASTER_RX_LOWER_PRI
(it hears the other's lower priority) re-asserts, and a node that steps down to BACKUP while
the cloud still points to it hands the VIP to its peer, as the agent does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
import struct
from pathlib import Path

from .companion_events import Event, EventError, State, parse_line
from .config import Config, ConfigError, VrrpInstance
from .config.model import IPAddress
from .hostnet import HostNetwork
from .logs import worth_logging
from .notify import run_as_of
from .provider import ProviderContext, load_checked, load_provider, provider_name, within_deadline
from .scripts import RunAs, ScriptError, default_run_as
from .service import ServiceManager
from .vip_mover import VipMover

log = logging.getLogger("cloudvip")
FIFO_CHECK = 2.0  # seconds between checks that the fifo is still the one keepalived writes
#: seconds after the last event of a burst to look at the host once more: keepalived's notify
#: processes start unordered, and a late one must not have the last word
RECHECK = 1.0
#: the longest FIFO line read (keepalived's are under 100 bytes); longer ones are dropped
MAX_FIFO_LINE = 64 * 1024
PRIVATE_TMP_DIRS = ("/tmp", "/var/tmp")


def cloud_instances(cfg: Config) -> list[VrrpInstance]:
    return [inst for inst in cfg.instances if inst.cloud is not None]


async def build_mover(cfg: Config, inst: VrrpInstance, host: HostNetwork) -> VipMover:
    """A started provider (host left to keepalived) behind a mover for one instance."""
    ilog = logging.getLogger(f"cloudvip.{inst.name}")
    ctx = ProviderContext(inst, cfg.global_defs, host, ilog, manage_host=False)
    provider = load_provider(provider_name(inst))(ctx)
    await within_deadline(provider, "start", provider.start())
    if provider.peer_refresh:
        try:
            await within_deadline(provider, "peer discovery", provider.discover_peers())
        except Exception as exc:  # classification falls back to the configured peers
            ilog.warning("%s: peer discovery failed: %s", inst.name, exc)
    mover = VipMover(inst.name, provider, ilog)
    mover.start()
    return mover


def notify_users(cfg: Config) -> dict[int, str]:
    """The users keepalived runs this config's notify scripts as (uid -> name), root aside:
    the only ones besides root whose events the companion takes."""
    gd = cfg.global_defs
    candidates: list[RunAs] = [default_run_as(gd.script_user, gd.script_group, gd.enable_script_security)]
    candidates += [run_as for cmd in cfg.notify_commands() if (run_as := run_as_of(cmd)) is not None]
    users: dict[int, str] = {}
    for run_as in candidates:
        if run_as.refused is not None or run_as.user is None:
            continue
        try:
            uid, _ = run_as.ids()
        except ScriptError as exc:
            log.warning("notify: %s", exc)
            continue
        if uid:
            users[uid] = run_as.user
    return users


def sole_peer(inst: VrrpInstance) -> IPAddress | None:
    """The master a BACKUP stepped down for, when the instance has one peer; None: unknown."""
    return inst.unicast_peers[0].address if len(inst.unicast_peers) == 1 else None


def private_tmp(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The private /tmp or /var/tmp (systemd's PrivateTmp=true: a directory bind-mounted over it)
    that `path` lies in: there this process sees its own FIFO, never keepalived's."""
    real = os.path.abspath(path)
    visible: dict[str, str] = {}  # mount point -> root of the mount on top
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and fields[4] in PRIVATE_TMP_DIRS:
                visible[fields[4]] = fields[3]
    for mount, root in visible.items():
        if root != "/" and (real == mount or real.startswith(mount + "/")):
            return mount
    return None


class Companion:
    def __init__(self, path: Path, config_id: str | None, socket: str, fifo: str | None = None,
                 metrics: str | None = None) -> None:
        self.path, self.config_id, self.socket, self.fifo = path, config_id, socket, fifo
        self.metrics = metrics
        self.movers: dict[str, VipMover] = {}
        self.instances: dict[str, VrrpInstance] = {}
        self.allowed: dict[int, str] = {}  # besides root: who may send events (keepalived's script users)
        self.refused = 0  # clients refused for their uid
        self.host = HostNetwork()
        self.service = ServiceManager()
        self._stop = asyncio.Event()
        self._followers: dict[str, asyncio.Task[None]] = {}

    def handle(self, ev: Event, source: str) -> str:
        """Hand an event to its instance; the answer for the notify client."""
        if ev.kind == "GROUP":
            return "ignored: a group event (its instances report their own)"
        mover = self.movers.get(ev.name)
        if mover is None:
            return f"ignored: {ev.name} has no cloud block"
        if ev.state in (State.MASTER_PRIORITY, State.BACKUP_PRIORITY):
            return f"ignored: a priority change of {ev.name}"
        if ev.state is State.MASTER_RX_LOWER_PRI:
            log.info("%s: keepalived is master and hears a lower priority (%s): re-asserting the VIP if "
                     "the cloud points elsewhere", ev.name, source)
            mover.announce()
        else:
            log.info("%s: keepalived says %s (%s)", ev.name, ev.state.value, source)
            self._follow(self.instances[ev.name], ev.state)
        return f"queued {ev.name} {ev.state.value}"

    def _follow(self, inst: VrrpInstance, said: State) -> None:
        mover = self.movers[inst.name]
        if said is State.MASTER or not inst.vips:
            # at once: a claim checks that keepalived carries the VIP right before it writes
            mover.want(said is State.MASTER)
        if not inst.vips:  # nothing on the host to tell the truth: the event decides
            return
        task = self._followers.get(inst.name)
        if task is not None:
            task.cancel()
        self._followers[inst.name] = asyncio.create_task(self._follow_host(inst, said), name=f"follow-{inst.name}")

    async def _follow_host(self, inst: VrrpInstance, said: State) -> None:
        """Want the VIP exactly while keepalived carries it: now (a MASTER is wanted already) and
        RECHECK after the last event of a burst."""
        mover = self.movers[inst.name]
        for delay in ((RECHECK,) if said is State.MASTER else (0.0, RECHECK)):
            await asyncio.sleep(delay)
            carries = await self.host.carries(inst)
            if carries != (said is State.MASTER):
                log.info("%s: keepalived said %s but %s the VIP: following the host (events out of order)",
                         inst.name, said.value, "carries" if carries else "does not carry")
            if carries != mover.desired or (carries and mover.actual is False):
                # stepped down for a master (BACKUP): after a partition the cloud may still point to us,
                # and that master may never hear us to re-assert; hand it over when we know who it is.
                # Carrying it with no claim held: a claim made while keepalived did not carry the VIP
                # yet (or no longer) made none; make it now
                mover.want(carries, yield_to=sole_peer(inst) if said is State.BACKUP else None)
            said = State.MASTER if carries else State.BACKUP

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
        fifo = self.fifo or cfg.global_defs.notify_fifo
        if fifo and (mount := private_tmp(fifo)) is not None:
            log.error("notify_fifo %s is in %s, which is private to this process (systemd PrivateTmp=true): it "
                      "would read a FIFO of its own, never keepalived's; put notify_fifo outside %s "
                      "(e.g. /run/keepalived/notify.fifo)", fifo, mount, " and ".join(PRIVATE_TMP_DIRS))
            return 1
        self.instances = {inst.name: inst for inst in instances}
        self.allowed = notify_users(cfg)
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

                serve(self.metrics, RuntimeCollector(dict, lambda: self.movers, loop))
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
            for task in (*tasks, *self._followers.values()):
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
        """Root-only, unless keepalived runs its notify scripts as another user: then the socket
        is open to connect (the directory searchable, not listable) and each client's uid, as
        the kernel reports it (SO_PEERCRED), must be root's or one of those users'."""
        directory = os.path.dirname(self.socket)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if self.allowed:
            os.chmod(directory, os.stat(directory).st_mode & 0o777 | 0o711)
        if os.path.exists(self.socket):
            if await _answers(self.socket):
                raise RuntimeError(f"another companion already listens on {self.socket}")
            os.unlink(self.socket)  # left behind by a companion that died
        old = os.umask(0o177)  # root-only from the start: events move the VIP
        try:
            server = await asyncio.start_unix_server(self._client, path=self.socket)
        finally:
            os.umask(old)
        if self.allowed:
            os.chmod(self.socket, 0o666)
            log.info("events on %s from root and %s (checked by uid)", self.socket,
                     ", ".join(f"{name} ({uid})" for uid, name in sorted(self.allowed.items())))
        return server

    def _may_send(self, writer: asyncio.StreamWriter) -> str | None:
        """None if the client may send events, else why not."""
        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", creds)
        if uid == 0 or uid in self.allowed:
            return None
        return f"uid {uid} (pid {pid}) is neither root nor a script user of keepalived"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            refused = self._may_send(writer)
            line = (await asyncio.wait_for(reader.readline(), 2.0)).decode(errors="replace").strip()
            if refused is not None:
                answer = f"error: not allowed: {refused}"
                self.refused += 1
                if worth_logging(self.refused):  # a local user must not flood the journal
                    log.warning("notify: event refused: %s (%d so far)", refused, self.refused)
            else:
                try:
                    answer = self.handle(parse_line(line), "notify")
                except EventError as exc:
                    answer = f"error: {exc}"
                    log.warning("notify: %s", exc)
            writer.write(answer.encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
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
        lines = _LineSplitter(MAX_FIFO_LINE)
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(MAX_FIFO_LINE), FIFO_CHECK)
                except TimeoutError:
                    try:
                        if os.stat(path).st_ino != inode:
                            return  # keepalived made a new fifo: read that one
                    except FileNotFoundError:
                        return
                    continue
                if not chunk:
                    return
                for raw in lines.feed(chunk):
                    line = raw.decode(errors="replace").strip()
                    try:
                        self.handle(parse_line(line), "notify_fifo")
                    except EventError as exc:
                        log.debug("notify_fifo: %s", exc)  # e.g. keepalived's own non-VRRP lines
                if lines.dropped:
                    log.warning("notify_fifo %s: a line over %d bytes dropped", path, MAX_FIFO_LINE)
                    lines.dropped = 0
        finally:
            transport.close()


class _LineSplitter:
    """Whole lines out of a byte stream; a line longer than `limit` is dropped whole (counted),
    its tail never mistaken for a line of its own."""

    def __init__(self, limit: int) -> None:
        self.limit, self.dropped = limit, 0
        self._buf = b""
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        *complete, self._buf = (self._buf + data).split(b"\n")
        for line in complete:
            if self._skipping:
                self._skipping = False  # the end of the overlong line
            elif len(line) > self.limit:
                self.dropped += 1
            else:
                out.append(line)
        if len(self._buf) > self.limit:
            if not self._skipping:
                self.dropped += 1
            self._buf, self._skipping = b"", True
        return out


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
