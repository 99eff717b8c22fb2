"""Fixtures for tests in network namespaces: a bridge topology, cloudvip agents and
real keepalived daemons. Everything is created per test and removed after it, also on failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from cloudvip_lab.daemons import Daemon, vrrp_conf
from cloudvip_lab.topology import Topology

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2 to create network namespaces")
needs_keepalived = pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed")


def full_status(d: Daemon) -> dict[str, Any]:
    """`cloudvip status --json` of the agent: its process and every instance."""
    done = subprocess.run([sys.executable, "-m", "cloudvip", "status", "--json", "-f", str(d.conf)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


def status(d: Daemon) -> dict[str, Any]:
    """`cloudvip status --json` of the agent's (first) instance."""
    inst: dict[str, Any] = full_status(d)["instances"][0]
    return inst


def require(*kinds: str) -> None:
    """Skip a parametrized case that runs keepalived where it is not installed."""
    if "keepalived" in kinds and shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed")


class Cluster:
    def __init__(self, topo: Topology, workdir: Path) -> None:
        self.topo, self.workdir = topo, workdir
        self.daemons: list[Daemon] = []

    def daemon(self, index: int, kind: str, binary: str = "keepalived", **conf: object) -> Daemon:
        node = self.topo.nodes[index]
        peers = [n for n in self.topo.nodes if n is not node]
        d = Daemon(self.topo, node, kind, vrrp_conf(node, peers, **conf), self.workdir,  # type: ignore[arg-type]
                   binary=binary)
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

