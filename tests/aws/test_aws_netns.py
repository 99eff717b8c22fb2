"""Two cloudvip agents in namespaces, each on its own emulated EC2 instance: the VIP follows the
VRRP master in the (corrected) emulator, in all three modes. Each namespace reaches the emulator
and its own fake IMDS on its own 127.0.0.1 (lab/cloudvip_lab/aws_site.py), so the agents discover
who they are exactly as on EC2."""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from cloudvip_lab.aws_site import MODES, TAKEOVER_WRITE, AwsSite
from cloudvip_lab.daemons import VIP, Daemon, instance_block
from cloudvip_lab import ec2_emulator
from cloudvip_lab.ec2_emulator import FAULTS, Ec2Server, reset_observations, writes
from cloudvip_lab.profiles import PROFILES
from cloudvip_lab.topology import Topology

from ..fault_harness import Conditions
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
    backend: Callable[[], Any]  # moto's EC2 state in this process
    agents: list[Daemon] = field(default_factory=list)
    cond: Conditions = field(default_factory=lambda: Conditions(PROFILES["instant"], 0.1, 1.0))

    def agent(self, index: int, priority: int, cloud_extra: str | None = None,
              unicast: bool = True, mode: str = "secondary_ip") -> Daemon:
        node = self.topo.nodes[index]
        peers = [n for n in self.topo.nodes if n is not node] if unicast else []
        vip = AwsSite.vip_for(mode, VIP)
        extra = self.cond.cloud_extra if cloud_extra is None else cloud_extra
        conf = f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
            node, peers, priority=priority, version=3, advert=self.cond.advert, multicast=not unicast,
            vip=f"{vip}/{32 if vip != VIP else 24}", extra=self.site.cloud_block(mode, extra))
        daemon = Daemon(self.topo, node, "cloudvip", conf, self.tmp, env=self.cond.env()).start()
        self.agents.append(daemon)
        return daemon

    def cluster(self, mode: str = "secondary_ip") -> list[Daemon]:
        """An agent on every node (priorities 100, 90, 80...), once node 1 holds the VIP in EC2
        (and on its host)."""
        agents = [self.agent(i, 100 - 10 * i, mode=mode) for i in range(len(self.topo.nodes))]
        assert self.topo.wait_for(lambda: self.holds(mode, 0, agents[0]), 10 + 3 * self.cond.mdi, 0.05), \
            "".join(d.log for d in agents)
        # nodes started together may all be master for a moment, and claim: VRRP's own start-up
        # race (keepalived's too). Let it settle, then count the writes from here on.
        time.sleep(0.5)
        assert self.holds(mode, 0, agents[0]), "".join(d.log for d in agents)
        reset_observations()
        return agents

    def pair(self, mode: str = "secondary_ip") -> tuple[Daemon, Daemon]:
        a, b = self.cluster(mode)
        return a, b

    def owner_in_cloud(self, mode: str = "secondary_ip") -> int | None:
        """The node EC2 sends the VIP to, from moto's state (not through its reads, which may lag)."""
        return self.site.route(mode, AwsSite.vip_for(mode, VIP), self.backend()).node

    def holds(self, mode: str, index: int, daemon: Daemon) -> bool:
        """Node `index` alone owns the VIP in the cloud, and its host carries the address when the mode needs it."""
        vip = AwsSite.vip_for(mode, VIP)
        in_cloud = self.owner_in_cloud(mode) == index
        return in_cloud and (mode == "elastic_ip" or daemon.has_vip(vip))


@contextlib.contextmanager
def open_world(ec2: Ec2World, ec2_server: Ec2Server, tmp_path: Path, nodes: int,
               cond: Conditions | None = None) -> Iterator[World]:
    """Namespaces wired to the emulated EC2 under `cond` (default: instant, advert 0.1 s)."""
    topo = Topology("cvt", nodes).create()
    site: AwsSite | None = None
    w: World | None = None
    try:
        site = AwsSite(topo, ec2, ec2_server.port, cond.edge if cond else None, backend=ec2_server.ec2_backend)
        w = World(topo, ec2, site, tmp_path, ec2_server.ec2_backend) if cond is None else \
            World(topo, ec2, site, tmp_path, ec2_server.ec2_backend, cond=cond)
        if cond is not None:
            ec2_emulator.CONSISTENCY["window"] = cond.profile.consistency
            cond.watch(topo, VIP, cond.profile.propagation_for("secondary_ip"),
                       lambda: site.route("secondary_ip", VIP, ec2_server.ec2_backend()), on_host=True)
            fabric = cond.fabric
            if fabric is not None:
                site.data_plane = (VIP, lambda: fabric.applied.node)
        yield w
    finally:
        FAULTS.clear()
        ec2_emulator.CONSISTENCY["window"] = 0.0
        for d in w.agents if w else []:
            if d.alive:
                d.kill()
        if cond is not None:
            cond.close()
        if site:
            site.close()
        topo.destroy()  # partition rules and everything else live in its namespaces


@pytest.fixture
def world(ec2: Ec2World, ec2_server: Ec2Server, tmp_path: Path, nodes: int) -> Iterator[World]:
    with open_world(ec2, ec2_server, tmp_path, nodes) as w:
        yield w


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


def slow_start_conf(world: World, vi1_priority: int = 100, vi2_extra: str = "") -> str:
    """Node 1 alone: VI_1 on the linux provider (master at once), VI_2 on aws, whose start waits
    for a slow DescribeNetworkInterfaces (its peer lookup)."""
    node, peer = world.topo.nodes
    return f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
        node, [peer], priority=vi1_priority, version=3, advert=0.1, vrid=52, vip="198.51.100.150/24") + \
        "\n" + instance_block(node, [peer], name="VI_2", priority=100, version=3, advert=0.1,
                              extra=world.site.cloud_block("secondary_ip", vi2_extra))


def test_signals_during_start_up(world: World) -> None:
    """A SIGHUP while starting is a reload once started (not the end of the process); a SIGTERM
    while starting stops the start and releases what was already taken."""
    from cloudvip_lab.ec2_emulator import DELAYS

    topo = world.topo
    node = topo.nodes[0]
    DELAYS["DescribeNetworkInterfaces"] = 4.0
    d = Daemon(topo, node, "cloudvip", slow_start_conf(world), world.tmp).start()
    world.agents.append(d)
    assert topo.wait_for(lambda: d.has_vip("198.51.100.150"), 10, 0.02), d.log  # VI_1 runs; VI_2 is starting
    assert "cloudvip running" not in d.log
    d.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert d.alive, d.log
    assert topo.wait_for(lambda: "cloudvip running 2 instance(s)" in d.log, 15, 0.05), d.log
    assert topo.wait_for(lambda: "reload done" in d.log, 10, 0.05), d.log
    assert d.log.index("reload requested while starting") < d.log.index("cloudvip running") < d.log.index("reload done")
    assert d.term() == 0

    d.drop_vip("198.51.100.150/24")
    d.start()
    assert topo.wait_for(lambda: d.has_vip("198.51.100.150"), 10, 0.02), d.log
    assert "cloudvip running" not in d.log.split("reload done")[-1]
    d.signal(signal.SIGTERM)
    assert d.proc is not None and d.proc.wait(10) == 0, d.log
    assert "stopped while starting: releasing what was taken" in d.log
    assert not d.has_vip("198.51.100.150")  # released: VI_1 had taken it
    DELAYS.clear()


def test_a_sighup_during_a_reload_is_queued_not_dropped(world: World) -> None:
    """The second edit takes effect: a reload that restarts VI_2 (slow provider start) is running
    when VI_1's priority changes and a second SIGHUP arrives."""
    from cloudvip_lab.ec2_emulator import DELAYS

    topo = world.topo
    d = Daemon(topo, topo.nodes[0], "cloudvip", slow_start_conf(world), world.tmp).start()
    world.agents.append(d)
    assert topo.wait_for(lambda: "cloudvip running 2 instance(s)" in d.log, 15, 0.05), d.log
    DELAYS["DescribeNetworkInterfaces"] = 3.0
    d.conf.write_text(slow_start_conf(world, vi2_extra="        reconcile_interval 7\n"))  # VI_2 restarts
    d.signal(signal.SIGHUP)
    assert topo.wait_for(lambda: "reloading" in d.log, 5, 0.02), d.log
    d.conf.write_text(slow_start_conf(world, vi1_priority=120, vi2_extra="        reconcile_interval 7\n"))
    d.signal(signal.SIGHUP)  # during the first reload
    assert topo.wait_for(lambda: d.log.count("reload done") == 2, 20, 0.05), d.log
    assert "reload requested while reloading: it follows" in d.log
    vi1 = next(i for i in d.status()["instances"] if i["name"] == "VI_1")
    assert vi1["priority"]["base"] == 120
    DELAYS.clear()


def test_peer_discovery_failing_never_means_anyone(world: World) -> None:
    """Peers by tag: while discovery fails at boot the instances stay out of the election
    (FAULT, reason in the log and status) instead of accepting any source; once peers are found
    they elect; discovery failing or finding nobody mid-run keeps the peers known."""
    from cloudvip_lab.ec2_emulator import FAULTS

    topo, ec2 = world.topo, world.ec2
    ec2.client.create_tags(Resources=ec2.instances, Tags=[{"Key": "cloudvip:group", "Value": "web"}])
    FAULTS["DescribeInstances"] = [("InternalError", 500)] * 2  # each agent's discovery at boot
    tag = "        peer_tag cloudvip:group=web\n        peer_refresh 5\n"
    a = world.agent(0, 100, tag, unicast=False)
    b = world.agent(1, 90, tag, unicast=False)
    assert topo.wait_for(lambda: "no peer known yet" in a.log and "no peer known yet" in b.log, 10, 0.05), a.log
    time.sleep(1.0)  # longer than Master_Down_Interval: nobody took the VIP alone
    assert vip_enis(ec2) == [] and not a.has_vip() and not b.has_vip()
    vi = a.status()["instances"][0]
    assert vi["state"] == "FAULT" and vi["priority"]["tracked"]["peers"] == "FAULT"
    assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[0]] and a.has_vip() and not b.has_vip(), 15, 0.05), \
        a.log + b.log
    assert "peers now 198.51.100.12" in a.log
    # mid-run: discovery fails, then finds nobody (tags removed): the known peers stay, no transition
    transitions = a.status()["instances"][0]["counters"].get("transitions", 0)
    FAULTS["DescribeInstances"] = [("InternalError", 500)] * 2
    ec2.client.delete_tags(Resources=ec2.instances, Tags=[{"Key": "cloudvip:group"}])
    assert topo.wait_for(lambda: "found nobody; keeping the last peers known (198.51.100.12)" in a.log, 15, 0.1), \
        a.log
    assert "keeping the peers known" in a.log
    assert a.status()["instances"][0]["counters"].get("transitions", 0) == transitions
    assert vip_enis(ec2) == [ec2.enis[0]] and a.has_vip() and not b.has_vip()


def test_a_reload_applies_changes_in_place_without_a_failover(world: World) -> None:
    """A master whose notify script, track_script list and reconcile_interval (its provider's
    settings) change over a reload stays master: no transition, no priority-0 advert on the wire
    (a probe in the backup's namespace sees every advert), no API write; the new settings work."""
    from cloudvip_lab.probe import Probe

    topo, ec2 = world.topo, world.ec2
    a, b = world.pair()
    probe = Probe(topo, topo.nodes[1])
    try:
        before = a.status()["instances"][0]
        script = world.tmp / "check.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
        text = a.conf.read_text().replace("        reconcile_interval 1\n", "        reconcile_interval 2\n")
        text = text.replace("vrrp_instance VI_1 {", f'vrrp_script chk {{\n    script "{script}"\n    interval 1\n'
                            "    weight 10\n}\n\nvrrp_instance VI_1 {", 1)
        text = text.replace("    cloud aws {", f'    notify "{script}"\n    track_script {{\n        chk\n    }}\n'
                            "    cloud aws {", 1)
        a.conf.write_text(text)
        t0 = time.monotonic()
        a.signal(signal.SIGHUP)
        assert topo.wait_for(lambda: "reload done" in a.log, 10, 0.05), a.log
        assert "VI_1: track_scripts, notify, cloud changed: applied in place" in a.log, a.log
        assert "0 restarted or removed" in a.log and "1 updated in place" in a.log
        assert topo.wait_for(lambda: a.status()["instances"][0]["priority"]["effective"] == 110, 5, 0.1)
        time.sleep(2)
        after = a.status()["instances"][0]
        assert after["state"] == "MASTER" and after["counters"]["transitions"] == before["counters"]["transitions"]
        zero = [e for e in probe.events if e["ev"] == "advert" and e["src"] == str(topo.nodes[0].ip)
                and e["t"] >= t0 and e["prio"] == 0]
        assert zero == [] and b.status()["instances"][0]["state"] == "BACKUP"
        assert writes() == {} and world.holds("secondary_ip", 0, a)
        # the new provider (reconcile_interval 2) reconciles: a removal behind its back comes back
        world.site.remove_in_cloud("secondary_ip", VIP, ec2.enis[0])
        assert topo.wait_for(lambda: world.holds("secondary_ip", 0, a), 5, 0.05), a.log
    finally:
        probe.close()


def test_one_provider_that_cannot_start_does_not_stop_the_other_instances(world: World) -> None:
    """Two instances in one file: VI_1 on the linux provider, VI_2 on aws with its metadata
    service unreachable at boot. VI_1 is elected at once; VI_2 waits out of the election (FAULT,
    in status and the log) while its start is retried; when IMDS answers, it joins."""
    from cloudvip_lab.aws_site import IMDS_PORT
    from cloudvip_lab.ec2_emulator import REGION
    from cloudvip_lab.netns_services import FakeImds

    topo, ec2 = world.topo, world.ec2
    node, peer = topo.nodes
    late_port = IMDS_PORT + 1  # nothing answers there yet
    conf = f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
        node, [peer], priority=100, version=3, advert=0.1, vrid=52, vip="198.51.100.150/24") + "\n" + \
        instance_block(node, [peer], name="VI_2", priority=100, version=3, advert=0.1,
                       extra=world.site.cloud_block("secondary_ip").replace(f":{IMDS_PORT}", f":{late_port}"))
    d = Daemon(topo, node, "cloudvip", conf, world.tmp).start()
    world.agents.append(d)
    imds: FakeImds | None = None
    try:
        assert topo.wait_for(lambda: d.has_vip("198.51.100.150"), 10, 0.02), d.log  # VI_1 runs
        assert topo.wait_for(lambda: "VI_2 stays out of the election (FAULT)" in d.log, 10, 0.05), d.log
        status = d.status()
        assert [i["name"] for i in status["instances"]] == ["VI_1"]
        waiting = status["waiting"][0]
        assert waiting["name"] == "VI_2" and waiting["state"] == "FAULT" and "IMDS" in waiting["reason"]
        assert vip_enis(ec2) == [] and d.alive
        time.sleep(4)  # the metadata service comes back
        imds = FakeImds(node.name, late_port, {"instance_id": ec2.instances[0], "mac": node.mac, "region": REGION,
                                              "eni": ec2.enis[0]})
        assert topo.wait_for(lambda: vip_enis(ec2) == [ec2.enis[0]] and d.has_vip(VIP), 20, 0.05), d.log
        assert "VI_2: provider started (attempt" in d.log and d.status()["waiting"] == []
        assert d.has_vip("198.51.100.150")  # VI_1 went on all along
        assert d.log.count("VI_1: BACKUP -> MASTER") == 1
    finally:
        if imds is not None:
            imds.close()
