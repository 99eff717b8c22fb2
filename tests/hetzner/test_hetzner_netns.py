"""Two cloudvip agents in namespaces, each one server of the local Hetzner Cloud API: the
floating IP (or alias IP) follows the VRRP master in the emulator. Each namespace reaches the
API and its own metadata service on its own 127.0.0.1 (lab/cloudvip_lab/hetzner_site.py)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.daemons import Daemon, instance_block
from cloudvip_lab.hcloud_emulator import TOKEN, HetznerWorld
from cloudvip_lab.hetzner_site import MODES, HetznerSite
from cloudvip_lab.profiles import PROFILES
from cloudvip_lab.topology import Topology

from ..fault_harness import Conditions
from ..netns.conftest import needs_root

pytestmark = [needs_root, pytest.mark.netns]


@dataclass
class World:
    topo: Topology
    hz: HetznerWorld
    site: HetznerSite
    tmp: Path
    agents: list[Daemon] = field(default_factory=list)
    cond: Conditions = field(default_factory=lambda: Conditions(PROFILES["instant"], 0.1, 5.0))

    def agent(self, index: int, priority: int, mode: str) -> Daemon:
        node = self.topo.nodes[index]
        peers = [n for n in self.topo.nodes if n is not node]
        vip = HetznerSite.vip_for(mode)
        conf = f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
            node, peers, priority=priority, version=3, advert=self.cond.advert,
            vip=f"{vip}/{24 if mode == 'alias_ip' else 32}", extra=self.site.cloud_block(mode, self.cond.cloud_extra))
        daemon = Daemon(self.topo, node, "cloudvip", conf, self.tmp, env=self.cond.env()).start()
        self.agents.append(daemon)
        return daemon

    def holds(self, mode: str, index: int, daemon: Daemon) -> bool:
        """Server `index` alone has the VIP in the API, and its host carries it."""
        return self.hz.holder_ids(mode) == [self.hz.servers[index].id] and daemon.has_vip(HetznerSite.vip_for(mode))

    def cluster(self, mode: str) -> list[Daemon]:
        """An agent on every node (priorities 100, 90, 80...), once node 1 holds the VIP."""
        agents = [self.agent(i, 100 - 10 * i, mode) for i in range(len(self.topo.nodes))]
        assert self.topo.wait_for(lambda: self.holds(mode, 0, agents[0]), 10 + 3 * self.cond.mdi, 0.05), \
            "".join(d.log for d in agents)
        time.sleep(0.5)  # past VRRP's start-up race (all may claim once); count writes from here
        assert self.holds(mode, 0, agents[0]), "".join(d.log for d in agents)
        self.hz.emulator.calls.clear()
        return agents

    def pair(self, mode: str) -> tuple[Daemon, Daemon]:
        a, b = self.cluster(mode)
        return a, b


@contextlib.contextmanager
def open_world(hz: HetznerWorld, token_file: str, tmp_path: Path, nodes: int, cond: Conditions | None = None,
               mode: str = "floating_ip") -> Iterator[World]:
    """Namespaces wired to the Hetzner Cloud API under `cond` (default: instant, advert 0.1 s)."""
    topo = Topology("cvh", nodes).create()
    site: HetznerSite | None = None
    w: World | None = None
    try:
        site = HetznerSite(topo, hz, token_file, cond.edge if cond else None)
        w = World(topo, hz, site, tmp_path) if cond is None else World(topo, hz, site, tmp_path, cond=cond)
        if cond is not None:
            hz.emulator.action_seconds = cond.profile.action_seconds
            cond.watch(topo, HetznerSite.vip_for(mode), cond.profile.propagation_for(mode),
                       lambda: site.route(mode), on_host=True)
        yield w
    finally:
        for d in w.agents if w else []:
            if d.alive:
                d.kill()
        if cond is not None:
            cond.close()
        if site:
            site.close()
        topo.destroy()


@pytest.fixture
def world(hz: HetznerWorld, token_file: str, tmp_path: Path, nodes: int) -> Iterator[World]:
    with open_world(hz, token_file, tmp_path, nodes) as w:
        yield w


@pytest.mark.parametrize("mode", MODES)
def test_killing_the_master_moves_the_vip_in_the_api(world: World, mode: str) -> None:
    a, b = world.pair(mode)
    assert f"hetzner {mode} on server {world.hz.servers[0].id}" in a.log  # found through the metadata service
    a.kill()
    assert world.topo.wait_for(lambda: world.holds(mode, 1, b), 10, 0.05), b.log
    assert TOKEN not in a.log + b.log  # debug logging, and still no token
    writes = world.hz.emulator.writes()
    # floating IP: one assign; alias IP: shrink the old holder's list, then grow ours
    assert writes == ({world.hz.servers[1].id: 1} if mode == "floating_ip"
                      else {world.hz.servers[0].id: 1, world.hz.servers[1].id: 1}), writes


def test_429_and_5xx_are_retried(world: World) -> None:
    a, b = world.pair("floating_ip")
    world.hz.emulator.faults["assign"] = [(429, "rate_limit_exceeded"), (503, "unavailable"), (502, "bad_gateway")]
    killed = time.monotonic()
    a.kill()
    assert world.topo.wait_for(lambda: world.holds("floating_ip", 1, b), 15, 0.05), b.log
    took = time.monotonic() - killed
    assert world.hz.emulator.faults["assign"] == []
    # hcloud retries the 429 and the 502 itself (after a second), the mover the 503
    assert b.log.count("take failed (attempt") == 1 and "unavailable" in b.log, b.log
    assert took >= 1.0  # the 429 made it wait at least the second a request takes to come back
    assert world.hz.emulator.writes() == {world.hz.servers[1].id: 1}


def test_a_floating_ip_reassigned_behind_the_agents_back_is_reclaimed(world: World) -> None:
    a, b = world.pair("floating_ip")
    stranger = world.hz.emulator.add_server("stranger", "198.51.100.99")
    world.hz.floating_ip.server = stranger.id  # someone assigned it elsewhere
    assert world.topo.wait_for(lambda: world.holds("floating_ip", 0, a), 10, 0.05), a.log
    assert f"the VIP points to {stranger.id}, not a peer, in the cloud: re-asserting" in a.log
    assert world.hz.emulator.writes() == {world.hz.servers[0].id: 1}
    assert not b.has_vip(HetznerSite.vip_for("floating_ip"))


def test_sigterm_releases_the_host_address_while_an_api_call_hangs(
        world: World, record_property: Callable[[str, object], None]) -> None:
    """The API accepts and never answers; the master is reading it (a lower-priority advert made
    it check ownership) when SIGTERM comes: it drops the VIP from the host at once and exits 0
    well within the unit's TimeoutStopSec (20 s), whatever the hung call does."""
    a, b = world.pair("floating_ip")
    b.kill()
    forwarder = world.site.forwarders[0]
    forwarder.hang()
    a_node, b_node = world.topo.nodes
    subprocess.run(world.topo.exec_args(b_node, sys.executable, "-m", "cloudvip_lab.attacker", str(a_node.ip),
                                        "advert", "--count", "1", "--src", str(b_node.ip), "--version", "3",
                                        "--priority", "50", "--address", HetznerSite.vip_for("floating_ip")),
                   check=True, capture_output=True, timeout=30)
    assert world.topo.wait_for(lambda: bool(forwarder.held), 5, 0.05), a.log  # its ownership read hangs
    assert a.has_vip(HetznerSite.vip_for("floating_ip"))
    stopped = time.monotonic()
    assert a.term(timeout=15) == 0, a.log
    took = time.monotonic() - stopped
    assert took < 10, a.log
    record_property("figure", f"hung API call at SIGTERM: exit 0 and the host address gone {took:.2f} s after "
                              "the signal")
    assert not a.has_vip(HetznerSite.vip_for("floating_ip")), a.log
    assert re.search(r"abandoning the .*announce.* under way to release now", a.log), a.log
