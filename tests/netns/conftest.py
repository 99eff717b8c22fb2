"""Fixtures for tests in network namespaces: a bridge topology, cloudvip agents and
real keepalived daemons. Everything is created per test and removed after it, also on failure."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip.lab.topology import Node, Topology, ip

VIP = "198.51.100.100"

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2 to create network namespaces")
needs_keepalived = pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed")


def vrrp_conf(node: Node, peers: list[Node], *, priority: int, version: int = 2, advert: float = 1,
              password: str | None = "secretpw", vrid: int = 51, state: str = "BACKUP",
              nopreempt: bool = False, preempt_delay: float | None = None, extra: str = "",
              global_extra: str = "") -> str:
    auth = (f"    authentication {{\n        auth_type PASS\n        auth_pass {password}\n    }}\n"
            if password and version == 2 else "")
    opts = "    nopreempt\n" if nopreempt else ""
    if preempt_delay is not None:
        opts += f"    preempt_delay {preempt_delay:g}\n"
    peer_lines = "".join(f"        {p.ip}\n" for p in peers)
    return f"""global_defs {{
    router_id {node.name}
{global_extra}}}

vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert:g}
    version {version}
{auth}{opts}    unicast_src_ip {node.ip}
    unicast_peer {{
{peer_lines}    }}
    virtual_ipaddress {{
        {VIP}/24
    }}
{extra}}}
"""


class Daemon:
    """A cloudvip agent or keepalived in one node's namespace."""

    def __init__(self, topo: Topology, node: Node, kind: str, conf: str, workdir: Path) -> None:
        self.topo, self.node, self.kind = topo, node, kind
        self.dir = workdir / f"{kind}-{node.name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "keepalived.conf"
        self.conf.write_text(conf)
        self.log_path = self.dir / "log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        if self.kind == "cloudvip":
            cmd = [sys.executable, "-m", "cloudvip", "run", "-f", str(self.conf), "--log-level", "debug"]
        else:
            cmd = ["keepalived", "-n", "-l", "-D", "-G", "--vrrp", "-f", str(self.conf),
                   "-p", str(self.dir / "keepalived.pid"), "-r", str(self.dir / "vrrp.pid")]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.topo.exec_args(self.node, *cmd), stdout=log, stderr=log)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, keepalived's VRRP child included (a crash: the VIP stays behind, as in real life)."""
        for pid in ip("netns", "pids", self.node.name, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self.proc.wait(10)
        self.proc = None

    def term(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(15)
        self.proc = None
        return rc

    def has_vip(self) -> bool:
        return self.topo.has_address(self.node, VIP)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    def __init__(self, topo: Topology, workdir: Path) -> None:
        self.topo, self.workdir = topo, workdir
        self.daemons: list[Daemon] = []

    def daemon(self, index: int, kind: str, **conf: object) -> Daemon:
        node = self.topo.nodes[index]
        peers = [n for n in self.topo.nodes if n is not node]
        d = Daemon(self.topo, node, kind, vrrp_conf(node, peers, **conf), self.workdir)  # type: ignore[arg-type]
        self.daemons.append(d)
        return d

    def holders(self) -> list[Daemon]:
        """Live daemons whose node carries the VIP."""
        return [d for d in self.daemons if d.alive and d.has_vip()]

    def wait_holder(self, daemon: Daemon, timeout: float) -> float | None:
        """Monotonic time at which `daemon` is the only live holder, or None."""
        return self.topo.wait_for(lambda: self.holders() == [daemon], timeout)

    def stop_all(self) -> None:
        for d in self.daemons:
            if d.alive:
                d.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {d.kind} {d.node.name}\n{d.log}" for d in self.daemons)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    nodes = getattr(request, "param", 2)
    topo = Topology("cvt", nodes).create()
    c = Cluster(topo, tmp_path)
    try:
        yield c
    finally:
        c.stop_all()
        if hasattr(request.node, "rep_call") and request.node.rep_call.failed:
            print(c.logs())
        topo.destroy()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def settle(seconds: float) -> None:
    time.sleep(seconds)
