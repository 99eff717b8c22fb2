"""Two cloudvip agents in namespaces, each on its own emulated EC2 instance: the VIP follows the
VRRP master in the (corrected) emulator. Each namespace reaches the emulator and its own fake
IMDS on its own 127.0.0.1, so the agents discover who they are exactly as on EC2."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip.lab.daemons import VIP, Daemon, instance_block
from cloudvip.lab.topology import Topology

from ..netns.conftest import needs_root
from .conftest import REGION, Ec2World
from .moto_fixes import FAULTS, WRITES
from .netns_services import FakeImds, Forwarder

pytestmark = [needs_root, pytest.mark.netns]
EC2_PORT, IMDS_PORT = 5000, 1338


@dataclass
class World:
    """Namespaces wired to the emulated EC2; every agent started here is killed at teardown."""

    topo: Topology
    ec2: Ec2World
    tmp: Path
    agents: list[Daemon] = field(default_factory=list)

    def agent(self, index: int, priority: int, cloud_extra: str = "        reconcile_interval 1\n",
              unicast: bool = True) -> Daemon:
        node = self.topo.nodes[index]
        cloud = (f"    cloud aws {{\n        mode secondary_ip\n        endpoint http://127.0.0.1:{EC2_PORT}\n"
                 f"        imds_endpoint http://127.0.0.1:{IMDS_PORT}\n{cloud_extra}    }}\n")
        peers = [n for n in self.topo.nodes if n is not node] if unicast else []
        conf = f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
            node, peers, priority=priority, version=3, advert=0.1, multicast=not unicast, extra=cloud)
        daemon = Daemon(self.topo, node, "cloudvip", conf, self.tmp).start()
        self.agents.append(daemon)
        return daemon

    def pair(self) -> tuple[Daemon, Daemon]:
        """Node 1 (priority 100) and node 2 (90), once node 1 holds the VIP in EC2 and on its host."""
        a, b = self.agent(0, 100), self.agent(1, 90)
        assert self.topo.wait_for(lambda: vip_enis(self.ec2) == [self.ec2.enis[0]] and a.has_vip(), 10, 0.05), \
            a.log + b.log
        return a, b


@pytest.fixture
def world(ec2: Ec2World, moto_endpoint: str, tmp_path: Path) -> Iterator[World]:
    topo = Topology("cvt", 2).create()
    services: list[Forwarder | FakeImds] = []
    w = World(topo, ec2, tmp_path)
    try:
        port = int(moto_endpoint.rsplit(":", 1)[1])
        for node, instance, eni in zip(topo.nodes, ec2.instances, ec2.enis, strict=True):
            services.append(Forwarder(node.name, EC2_PORT, port))
            services.append(FakeImds(node.name, IMDS_PORT, {"instance_id": instance, "mac": node.mac,
                                                              "region": REGION, "eni": eni}))
        yield w
    finally:
        FAULTS.clear()
        WRITES.clear()
        for d in w.agents:
            if d.alive:
                d.kill()
        for s in services:
            s.close()
        topo.destroy()  # partition rules and everything else live in its namespaces


def vip_enis(ec2: Ec2World) -> list[str]:
    found = ec2.client.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": [VIP]}])["NetworkInterfaces"]
    return [ni["NetworkInterfaceId"] for ni in found]


def test_the_vip_follows_the_master_in_ec2(world: World) -> None:
    topo, ec2 = world.topo, world.ec2
    a, b = world.pair()
    assert "aws secondary_ip on instance " + ec2.instances[0] in a.log  # discovered through IMDSv2
    a.kill()
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[1]] and b.has_vip(), 10, 0.05), b.log

    # behind the agent's back: the VIP is taken away to nobody -> reconciliation re-asserts
    ec2.client.unassign_private_ip_addresses(NetworkInterfaceId=ec2.enis[1], PrivateIpAddresses=[VIP])
    assert vip_enis(ec2) == []
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[1]], 5, 0.05), b.log
    assert "points to nobody in the cloud: re-asserting" in b.log


def test_throttling_and_5xx_are_retried_and_one_instance_ends_up_with_the_vip(world: World) -> None:
    topo, ec2 = world.topo, world.ec2
    a, b = world.pair()
    FAULTS["AssignPrivateIpAddresses"] = [("RequestLimitExceeded", 503), ("InternalError", 500),
                                          ("RequestLimitExceeded", 503)]
    a.kill()
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[1]] and b.has_vip(), 15, 0.05), b.log
    assert FAULTS["AssignPrivateIpAddresses"] == []
    assert b.log.count("take failed (attempt") == 3, b.log
    assert "RequestLimitExceeded" in b.log and "InternalError" in b.log


def test_partition_costs_at_most_one_claim_per_side_and_heals(world: World) -> None:
    topo, ec2 = world.topo, world.ec2
    a, b = world.pair()
    WRITES.clear()
    for node in topo.nodes:  # VRRP dropped both ways; the API still reachable by both
        topo.partition_vrrp(node, True)
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[1]], 5, 0.05), b.log  # b claims: last claim
    time.sleep(3)  # three reconciliation rounds: nobody fights
    assert vip_enis(ec2) == [ec2.enis[1]]
    assert WRITES == {ec2.enis[1]: 1}, WRITES
    assert "split brain?" in a.log
    for node in topo.nodes:
        topo.partition_vrrp(node, False)
    # adverts again: b (90) yields to a (100); a hears the lower priority and re-asserts once
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[0]] and a.has_vip() and not b.has_vip(), 5, 0.05), \
        a.log + b.log
    time.sleep(2)
    assert WRITES == {ec2.enis[1]: 1, ec2.enis[0]: 1}, WRITES


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
