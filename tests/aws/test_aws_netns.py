"""Two cloudvip agents in namespaces, each on its own emulated EC2 instance: the VIP follows the
VRRP master in the (corrected) emulator, in all three modes. Each namespace reaches the emulator
and its own fake IMDS on its own 127.0.0.1 (cloudvip/lab/aws_site.py), so the agents discover
who they are exactly as on EC2."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip.lab.aws_site import MODES, TAKEOVER_WRITE, AwsSite
from cloudvip.lab.daemons import VIP, Daemon, instance_block
from cloudvip.lab.ec2_emulator import FAULTS, Ec2Server, reset_observations, writes
from cloudvip.lab.topology import Topology

from ..netns.conftest import needs_root
from .conftest import Ec2World

pytestmark = [needs_root, pytest.mark.netns]


@dataclass
class World:
    """Namespaces wired to the emulated EC2; every agent started here is killed at teardown."""

    topo: Topology
    ec2: Ec2World
    site: AwsSite
    tmp: Path
    agents: list[Daemon] = field(default_factory=list)

    def agent(self, index: int, priority: int, cloud_extra: str = "        reconcile_interval 1\n",
              unicast: bool = True, mode: str = "secondary_ip") -> Daemon:
        node = self.topo.nodes[index]
        peers = [n for n in self.topo.nodes if n is not node] if unicast else []
        vip = AwsSite.vip_for(mode, VIP)
        conf = f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
            node, peers, priority=priority, version=3, advert=0.1, multicast=not unicast,
            vip=f"{vip}/{32 if vip != VIP else 24}", extra=self.site.cloud_block(mode, cloud_extra))
        daemon = Daemon(self.topo, node, "cloudvip", conf, self.tmp).start()
        self.agents.append(daemon)
        return daemon

    def cluster(self, mode: str = "secondary_ip") -> list[Daemon]:
        """An agent on every node (priorities 100, 90, 80...), once node 1 holds the VIP in EC2
        (and on its host)."""
        agents = [self.agent(i, 100 - 10 * i, mode=mode) for i in range(len(self.topo.nodes))]
        assert self.topo.wait_for(lambda: self.holds(mode, 0, agents[0]), 10, 0.05), "".join(d.log for d in agents)
        # nodes started together may all be master for a moment, and claim: VRRP's own start-up
        # race (keepalived's too). Let it settle, then count the writes from here on.
        time.sleep(0.5)
        assert self.holds(mode, 0, agents[0]), "".join(d.log for d in agents)
        reset_observations()
        return agents

    def pair(self, mode: str = "secondary_ip") -> tuple[Daemon, Daemon]:
        a, b = self.cluster(mode)
        return a, b

    def holds(self, mode: str, index: int, daemon: Daemon) -> bool:
        """Node `index` alone owns the VIP in the cloud, and its host carries the address when the mode needs it."""
        vip = AwsSite.vip_for(mode, VIP)
        in_cloud = self.site.holder_eni(mode, vip) == [self.ec2.enis[index]]
        return in_cloud and (mode == "elastic_ip" or daemon.has_vip(vip))


@pytest.fixture
def world(ec2: Ec2World, ec2_server: Ec2Server, tmp_path: Path, nodes: int) -> Iterator[World]:
    topo = Topology("cvt", nodes).create()
    site: AwsSite | None = None
    w: World | None = None
    try:
        site = AwsSite(topo, ec2, ec2_server.port)
        w = World(topo, ec2, site, tmp_path)
        yield w
    finally:
        FAULTS.clear()
        for d in w.agents if w else []:
            if d.alive:
                d.kill()
        if site:
            site.close()
        topo.destroy()  # partition rules and everything else live in its namespaces


def vip_enis(ec2: Ec2World) -> list[str]:
    return ec2.vip_enis(VIP)


@pytest.mark.parametrize("mode", MODES)
def test_killing_the_master_moves_the_vip_in_ec2(world: World, mode: str) -> None:
    a, b = world.pair(mode)
    assert f"aws {mode} on instance " + world.ec2.instances[0] in a.log  # discovered through IMDSv2
    a.kill()
    assert world.topo.wait_for(lambda: world.holds(mode, 1, b), 10, 0.05), b.log
    assert writes() == {world.ec2.enis[1]: 1}, writes()  # one claim, nothing else
    if mode == "elastic_ip":  # bound to the new holder's primary private IP, on its instance
        addr = world.ec2.client.describe_addresses(AllocationIds=[world.ec2.allocation_id])["Addresses"][0]
        assert (addr["PrivateIpAddress"], addr["InstanceId"]) == ("198.51.100.12", world.ec2.instances[1])


@pytest.mark.parametrize("mode", MODES)
def test_a_vip_removed_behind_the_agents_back_is_reclaimed(world: World, mode: str) -> None:
    a, b = world.pair(mode)
    world.site.remove_in_cloud(mode, AwsSite.vip_for(mode, VIP), world.ec2.enis[0])
    reset_observations()  # count the agents' writes only
    assert world.site.holder_eni(mode, AwsSite.vip_for(mode, VIP)) == []
    assert world.topo.wait_for(lambda: world.holds(mode, 0, a), 5, 0.05), a.log
    assert "points to nobody in the cloud: re-asserting" in a.log
    assert writes() == {world.ec2.enis[0]: 1}, writes()


def test_a_vip_moved_to_a_stranger_is_reclaimed(world: World) -> None:
    topo, ec2 = world.topo, world.ec2
    a, b = world.pair()
    stranger = ec2.client.create_network_interface(SubnetId=ec2.subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.client.assign_private_ip_addresses(NetworkInterfaceId=stranger, PrivateIpAddresses=[VIP],
                                           AllowReassignment=True)
    assert vip_enis(ec2) == [stranger]
    reset_observations()
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[0]], 5, 0.05), a.log
    assert f"the VIP points to {stranger}, not a peer, in the cloud: re-asserting" in a.log
    assert writes() == {ec2.enis[0]: 1}, writes()
    assert not b.has_vip()



@pytest.mark.parametrize("mode", MODES)
def test_throttling_and_5xx_are_retried_and_one_instance_ends_up_with_the_vip(world: World, mode: str) -> None:
    a, b = world.pair(mode)
    action = TAKEOVER_WRITE[mode]
    FAULTS[action] = [("RequestLimitExceeded", 503), ("InternalError", 500), ("RequestLimitExceeded", 503)]
    a.kill()
    assert world.topo.wait_for(lambda: world.holds(mode, 1, b), 15, 0.05), b.log
    assert FAULTS[action] == []
    assert b.log.count("take failed (attempt") == 3, b.log
    assert "RequestLimitExceeded" in b.log and "InternalError" in b.log
    assert writes() == {world.ec2.enis[1]: 1}, writes()  # the retries wrote once


def test_partition_costs_at_most_one_claim_per_side_and_heals(world: World) -> None:
    topo, ec2 = world.topo, world.ec2
    a, b = world.pair()
    for node in topo.nodes:  # VRRP dropped both ways; the API still reachable by both
        topo.partition_vrrp(node, True)
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[1]], 5, 0.05), b.log  # b claims: last claim
    time.sleep(3)  # three reconciliation rounds: nobody fights
    assert vip_enis(ec2) == [ec2.enis[1]]
    assert writes() == {ec2.enis[1]: 1}, writes()
    assert "split brain?" in a.log
    for node in topo.nodes:
        topo.partition_vrrp(node, False)
    # adverts again: b (90) yields to a (100); a hears the lower priority and re-asserts once
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[0]] and a.has_vip() and not b.has_vip(), 5, 0.05), \
        a.log + b.log
    time.sleep(2)
    assert writes() == {ec2.enis[0]: 1, ec2.enis[1]: 1}, writes()


def test_peers_found_by_tag_need_no_unicast_peer_lines(world: World) -> None:
    topo, ec2 = world.topo, world.ec2
    ec2.client.create_tags(Resources=ec2.instances, Tags=[{"Key": "cloudvip:group", "Value": "web"}])
    tag = "        peer_tag cloudvip:group=web\n"
    a = world.agent(0, 100, tag, unicast=False)  # no unicast_peer at all
    b = world.agent(1, 90, tag, unicast=False)
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[0]] and a.has_vip() and not b.has_vip(), 10, 0.05), \
        a.log + b.log
    assert "peers found in the cloud: 198.51.100.12" in a.log
    a.kill()
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[1]] and b.has_vip(), 10, 0.05), b.log
