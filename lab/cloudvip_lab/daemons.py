"""cloudvip agents and keepalived daemons in lab namespaces, from generated configs.

Used by `cloudvip lab`, the namespace tests and bench/: one place that knows how
to start, kill (keepalived's VRRP child included) and inspect each daemon.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from cloudvip.companion_events import socket_path
from cloudvip.control import request
from .topology import Node, Topology, ip

VIP = "198.51.100.100"
VIP6 = "2001:db8::100"


def instance_block(node: Node, peers: list[Node], *, name: str = "VI_1", priority: int, version: int = 2,
                   advert: float = 1, password: str | None = "secretpw", vrid: int = 51, state: str = "BACKUP",
                   nopreempt: bool = False, preempt_delay: float | None = None, vip: str | None = None,
                   family: int = 4, multicast: bool = False, extra: str = "") -> str:
    """One vrrp_instance; unicast to `peers` unless `multicast`."""
    if vip is None:
        vip = f"{VIP}/24" if family == 4 else f"{VIP6}/64"
    src = node.ip if family == 4 else node.ip6
    auth = (f"    authentication {{\n        auth_type PASS\n        auth_pass {password}\n    }}\n"
            if password and version == 2 else "")
    opts = "    nopreempt\n" if nopreempt else ""
    if preempt_delay is not None:
        opts += f"    preempt_delay {preempt_delay:g}\n"
    peer_lines = "".join(f"        {p.ip if family == 4 else p.ip6}\n" for p in peers)
    unicast = "" if multicast else f"    unicast_src_ip {src}\n    unicast_peer {{\n{peer_lines}    }}\n"
    return f"""vrrp_instance {name} {{
    state {state}
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert:g}
    version {version}
{auth}{opts}{unicast}    virtual_ipaddress {{
        {vip}
    }}
{extra}}}
"""


def vrrp_conf(node: Node, peers: list[Node], *, global_extra: str = "", **instance: object) -> str:
    """A keepalived.conf with one instance, that keepalived and cloudvip both read."""
    return f"global_defs {{\n    router_id {node.name}\n{global_extra}}}\n\n" + \
        instance_block(node, peers, **instance)  # type: ignore[arg-type]


class Daemon:
    """A cloudvip agent, a keepalived, or a cloudvip companion (next to a keepalived) in one
    node's namespace."""

    def __init__(self, topo: Topology, node: Node, kind: str, conf: str | Path, workdir: Path,
                 log_level: str = "debug", config_id: str | None = None, args: tuple[str, ...] = (),
                 binary: str = "keepalived", env: dict[str, str] | None = None) -> None:
        """conf: the config text, or the path of a config to use as it is; binary: the keepalived
        to run (kind keepalived: Debian's, or a build such as 2.4.3's); env: added to the
        daemon's environment (e.g. the CA bundle an SDK trusts)."""
        if kind not in ("cloudvip", "keepalived", "companion"):
            raise ValueError(f"unknown daemon kind {kind!r}")
        self.topo, self.node, self.kind, self.log_level = topo, node, kind, log_level
        self.config_id, self.args, self.binary, self.env = config_id, args, binary, env or {}
        self.dir = workdir / f"{kind}-{node.name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        if isinstance(conf, Path):
            self.conf = conf
        else:
            self.conf = self.dir / "keepalived.conf"
            self.conf.write_text(conf)
        self.log_path = self.dir / "log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        if self.kind in ("cloudvip", "companion"):
            verb = "run" if self.kind == "cloudvip" else "companion"
            cmd = [sys.executable, "-m", "cloudvip", verb, "-f", str(self.conf), "--log-level", self.log_level,
                   *self.args]
        else:
            for stale in ("keepalived.pid", "vrrp.pid"):  # a SIGKILLed keepalived leaves them behind
                (self.dir / stale).unlink(missing_ok=True)
            cmd = [self.binary, "-n", "-l", "-D", "-G", "--vrrp", "-f", str(self.conf),
                   "-p", str(self.dir / "keepalived.pid"), "-r", str(self.dir / "vrrp.pid")]
        if self.config_id is not None:
            cmd += ["-i", self.config_id]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.topo.exec_args(self.node, *cmd), stdout=log, stderr=log,
                                         env={**os.environ, **self.env} if self.env else None)
        return self

    def doctor(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`cloudvip doctor` on this daemon's config, in its namespace, with its environment."""
        cmd = [sys.executable, "-m", "cloudvip", "doctor", "-f", str(self.conf), *args]
        if self.config_id is not None:
            cmd += ["-i", self.config_id]
        return subprocess.run(self.topo.exec_args(self.node, *cmd), capture_output=True, text=True, timeout=120,
                              env={**os.environ, **self.env} if self.env else None)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """Every process of this daemon (keepalived: parent and VRRP child)."""
        return [int(p) for p in ip("netns", "pids", self.node.name, check=False).stdout.split()]

    def kill(self) -> None:
        """SIGKILL every process (a crash: the VIP stays behind, as with a real crash)."""
        pids = set(self.pids())
        if self.proc is not None:  # `ip netns exec` may not have entered the namespace yet
            pids.add(self.proc.pid)
        # freeze all first: killing keepalived's parent alone makes its VRRP child resign
        # gracefully (priority 0), which is a SIGTERM, not a crash
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        if self.proc is not None:
            self.proc.wait(10)
        self.proc = None
        for role in ("agent", "companion"):  # a killed daemon leaves its socket behind
            Path(socket_path(str(self.conf), role, self.config_id)).unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        """The running agent's `cloudvip status` as JSON, from its control socket."""
        reply: dict[str, Any] = request(socket_path(str(self.conf), "agent", self.config_id), {"cmd": "status"})
        return reply

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def term(self, timeout: float = 15) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.proc = None
        return rc

    def has_vip(self, vip: str = VIP) -> bool:
        return self.topo.has_address(self.node, vip)

    def drop_vip(self, vip: str = f"{VIP}/24") -> None:
        """Remove an address a killed daemon left behind (a rebooted host would not have it)."""
        ip("-n", self.node.name, "addr", "del", vip, "dev", "eth0", check=False)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
