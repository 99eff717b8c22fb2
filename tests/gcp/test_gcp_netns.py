"""Two cloudvip agents in namespaces, each one VM of the local Compute Engine API: the alias IP
range (or the route) follows the VRRP master. Each namespace reaches the API and its own metadata
server on its own 127.0.0.1; the agents find their project, zone, name, NIC and credentials
there, as on GCE (lab/cloudvip_lab/gce_site.py)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip_lab.daemons import Daemon, instance_block
from cloudvip_lab.gce_emulator import build_world
from cloudvip_lab.gce_site import MODES, GceSite
from cloudvip_lab.profiles import PROFILES
from cloudvip_lab.topology import Topology

from ..fault_harness import Conditions, conditions
from ..netns.conftest import needs_root

pytestmark = [needs_root, pytest.mark.netns]
ADVERT, RECONCILE = 0.1, 2.0


@dataclass
class World:
    topo: Topology
    site: GceSite
    tmp: Path
    agents: list[Daemon] = field(default_factory=list)
    cond: Conditions = field(default_factory=lambda: Conditions(PROFILES["instant"], ADVERT, RECONCILE))

    def agent(self, index: int, priority: int, mode: str) -> Daemon:
        node = self.topo.nodes[index]
        peers = [n for n in self.topo.nodes if n is not node]
        vip = GceSite.vip_for(mode)
        conf = f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
            node, peers, priority=priority, version=3, advert=self.cond.advert,
            vip=f"{vip}/{24 if mode == 'alias_ip' else 32}", extra=self.site.cloud_block(mode, self.cond.cloud_extra))
        daemon = Daemon(self.topo, node, "cloudvip", conf, self.tmp, env=self.site.env()).start()
        self.agents.append(daemon)
        return daemon

    def holds(self, mode: str, index: int, daemon: Daemon) -> bool:
        vip = GceSite.vip_for(mode)
        return self.site.world.holders(mode, vip) == [f"node{index + 1}"] and daemon.has_vip(vip)

    def cluster(self, mode: str) -> list[Daemon]:
        """An agent on every node (priorities 100, 90, 80...), once node 1 holds the VIP."""
        agents = [self.agent(i, 100 - 10 * i, mode) for i in range(len(self.topo.nodes))]
        assert self.topo.wait_for(lambda: self.holds(mode, 0, agents[0]), 15 + 3 * self.cond.mdi, 0.05), \
            "".join(d.log for d in agents)
        time.sleep(0.5)  # past VRRP's start-up race; count writes from here
        assert self.holds(mode, 0, agents[0]), "".join(d.log for d in agents)
        self.site.world.emulator.calls.clear()
        return agents

    def pair(self, mode: str) -> tuple[Daemon, Daemon]:
        a, b = self.cluster(mode)
        return a, b


@contextlib.contextmanager
def open_world(tmp_path: Path, nodes: int, mode: str = "alias_ip", matrix: bool = False) -> Iterator[World]:
    """Namespaces wired to the Compute Engine API: instant, advert 0.1 s; `matrix`: under the
    fault matrix's conditions (fault_harness.conditions: CLOUDVIP_FAULT_PROFILE)."""
    topo = Topology("cvg", nodes).create()
    gce = build_world([(str(n.ip), n.mac) for n in topo.nodes])
    cond = conditions("gcp", gce.emulator.port, tmp_path) if matrix else None
    site: GceSite | None = None
    w: World | None = None
    try:
        site = GceSite(topo, gce, cond.edge if cond else None)
        w = World(topo, site, tmp_path) if cond is None else World(topo, site, tmp_path, cond=cond)
        if cond is not None:
            gce.emulator.op_seconds = cond.profile.operation_seconds
            cond.watch(topo, GceSite.vip_for(mode), cond.profile.propagation_for(f"gcp_{mode}"),
                       lambda: site.route(mode, GceSite.vip_for(mode)), on_host=True)
        yield w
    finally:
        for d in w.agents if w else []:
            if d.alive:
                d.kill()
        if cond is not None:
            cond.close()
        if site:
            site.close()
        gce.emulator.close()
        topo.destroy()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path, 2) as w:
        yield w


@pytest.mark.parametrize("mode", MODES)
def test_killing_the_master_moves_the_vip_in_the_api(world: World, mode: str) -> None:
    a, b = world.pair(mode)
    assert f"gcp {mode} on node1 in europe-west1-b (nic0, network default)" in a.log  # from the metadata server
    a.kill()
    assert world.topo.wait_for(lambda: world.holds(mode, 1, b), 10, 0.05), b.log
    writes = world.site.world.emulator.writes()
    # alias_ip: one remove on node1's NIC, one add on node2's; route: one delete, one insert
    assert writes == {"node1": 1, "node2": 1}, writes
    tokens = world.site.world.emulator.tokens
    assert tokens and not any(t in a.log + b.log for t in tokens)  # debug logging, and no credential


@pytest.mark.parametrize("mode", MODES)
def test_a_change_behind_our_back_is_reclaimed_and_throttling_retried(world: World, mode: str) -> None:
    a, _ = world.pair(mode)
    emu = world.site.world.emulator
    emu.faults["update_nic" if mode == "alias_ip" else "insert_route"] = [(429, "rateLimitExceeded")]
    with emu.lock:  # someone removes it in the console
        if mode == "alias_ip":
            emu.instances[("europe-west1-b", "node1")].nics[0].alias = []
        else:
            emu.routes.clear()
    assert world.topo.wait_for(lambda: world.holds(mode, 0, a), RECONCILE + 8, 0.05), a.log
    statuses = [c.status for c in emu.calls if c.op in ("update_nic", "insert_route")]
    assert statuses == [429, 200], statuses  # the throttled write was retried once, then done
    assert "re-asserting" in a.log


def test_the_gcp_lab_in_route_mode_runs_to_the_end() -> None:
    """`cloudvip lab --cloud gcp --mode route`: the route follows the election, the failover, a
    deletion behind the agents' back, preemption and the hand-over; the doctor passes first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cloudvip", "lab", "--cloud", "gcp", "--mode", "route",
                           "--profile", "instant"], capture_output=True, text=True, timeout=180)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    assert "Compute Engine: route 203.0.113.10/32 -> node2" in out and "lab OK" in out
    doctor = out[out.index("cloudvip doctor on node2"):out.index("node1 (the master) dies")]
    assert ", 0 failed" in doctor
    assert "cleaned up" in out
