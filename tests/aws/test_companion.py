"""Companion mode against the emulated EC2, in namespaces: keepalived's events, by socket or
notify_fifo, move the VIP; a burst costs one move; a companion started while keepalived is
master takes it; `cloudvip notify` without a companion moves it itself, but not on a late event
(keepalived no longer carries the VIP); and the real keepalived, with a companion next to each,
makes EC2 follow its failover."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip.companion_events import socket_path
from cloudvip.lab.aws_site import AwsSite
from cloudvip.lab.daemons import VIP, Daemon, instance_block
from cloudvip.lab.ec2_emulator import Ec2World, reset_observations, writes
from cloudvip.lab.topology import Topology, ip

from ..netns.conftest import needs_keepalived, needs_root

CLOUDVIP = str(Path(sys.executable).parent / "cloudvip")


@pytest.fixture
def site(ec2: Ec2World, ec2_server: object, tmp_path: Path) -> Iterator[tuple[Topology, AwsSite]]:
    """Namespaces as EC2 instances, as the companion runs there next to keepalived."""
    from cloudvip.lab.ec2_emulator import Ec2Server

    assert isinstance(ec2_server, Ec2Server)
    topo = Topology("cvm", 2).create()
    aws: AwsSite | None = None
    try:
        aws = AwsSite(topo, ec2, ec2_server.port)
        yield topo, aws
    finally:
        if aws is not None:
            aws.close()
        topo.destroy()


def companion_conf(topo: Topology, aws: AwsSite, path: Path, extra_global: str = "") -> Path:
    node, peer = topo.nodes
    path.write_text(f"global_defs {{\n    router_id {node.name}\n{extra_global}}}\n\n" + instance_block(
        node, [peer], priority=100, extra=aws.cloud_block("secondary_ip", "        reconcile_interval 60\n")))
    return path


def keepalived_master(topo: Topology, carries: bool) -> None:
    """What keepalived does on the host as master: carry the VIP (or, as backup, not)."""
    node = topo.nodes[0]
    ip("-n", node.name, "addr", "add" if carries else "del", f"{VIP}/24", "dev", "eth0", check=False)


async def send(sock: str, line: str) -> str:
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(line.encode() + b"\n")
    answer = (await reader.readline()).decode().strip()
    writer.close()
    return answer


def started(topo: Topology, d: Daemon) -> str:
    sock = socket_path(str(d.conf))
    assert topo.wait_for(lambda: "cloudvip companion: 1 instance(s)" in d.log, 15, 0.05), d.log
    return sock


pytestmark = [needs_root, pytest.mark.netns]


def test_a_burst_costs_one_move_and_the_latest_state_wins(ec2: Ec2World, site: tuple[Topology, AwsSite],
                                                          tmp_path: Path) -> None:
    topo, aws = site
    d = Daemon(topo, topo.nodes[0], "companion", companion_conf(topo, aws, tmp_path / "k.conf"), tmp_path).start()
    try:
        sock = started(topo, d)
        keepalived_master(topo, True)

        async def go() -> list[str]:
            answers = [await send(sock, f"INSTANCE VI_1 {s} 100") for s in ("MASTER", "BACKUP", "MASTER")]
            answers.append(await send(sock, "GROUP G1 MASTER 0"))
            answers.append(await send(sock, "INSTANCE VI_9 MASTER 100"))
            answers.append(await send(sock, "nonsense"))
            return answers

        answers = asyncio.run(go())
        assert answers[:3] == ["queued VI_1 MASTER", "queued VI_1 BACKUP", "queued VI_1 MASTER"]
        assert answers[3].startswith("ignored: a group event") and answers[4] == "ignored: VI_9 has no cloud block"
        assert answers[5].startswith("error: not a keepalived event")
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]], 10, 0.05), d.log
        time.sleep(0.5)
        assert writes() == {ec2.enis[0]: 1}, d.log  # MASTER, BACKUP, MASTER: one write
        d.term()
        assert not os.path.exists(sock)  # removed on exit
    finally:
        if d.alive:
            d.kill()


def test_events_from_keepalived_notify_fifo_and_sync_at_start(ec2: Ec2World, site: tuple[Topology, AwsSite],
                                                               tmp_path: Path) -> None:
    topo, aws = site
    fifo = tmp_path / "keepalived.fifo"
    conf = companion_conf(topo, aws, tmp_path / "k.conf", f"    notify_fifo {fifo}\n")
    d = Daemon(topo, topo.nodes[0], "companion", conf, tmp_path).start()
    try:
        started(topo, d)
        keepalived_master(topo, True)
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b'INSTANCE "VI_1" MASTER 100\n')  # keepalived's fifo line
        os.close(fd)
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]], 10, 0.05), d.log
        # a companion (re)started while keepalived is master takes the VIP without waiting for an event
        d.kill()
        ec2.client.unassign_private_ip_addresses(NetworkInterfaceId=ec2.enis[0], PrivateIpAddresses=[VIP])
        d.start()
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]], 15, 0.05), d.log
        assert "keepalived is master (it carries the VIP)" in d.log
    finally:
        if d.alive:
            d.kill()


def test_notify_without_a_companion_moves_the_vip_itself(ec2: Ec2World, site: tuple[Topology, AwsSite],
                                                         tmp_path: Path) -> None:
    topo, aws = site
    conf = companion_conf(topo, aws, tmp_path / "k.conf")
    notify = topo.exec_args(topo.nodes[0], CLOUDVIP, "notify", "-f", str(conf), "INSTANCE", "VI_1", "MASTER", "100")
    # a late MASTER event, keepalived no longer master (no VIP on the host): no claim
    done = subprocess.run(notify, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "no companion listens" in done.stderr, done.stderr
    assert "no longer master: no claim" in done.stderr and writes() == {}
    keepalived_master(topo, True)
    done = subprocess.run(notify, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ec2.vip_enis(VIP) == [ec2.enis[0]] and writes() == {ec2.enis[0]: 1}


@needs_keepalived
def test_keepalived_failover_moves_the_vip_in_ec2(ec2: Ec2World, ec2_server: object, tmp_path: Path) -> None:
    from cloudvip.lab.ec2_emulator import Ec2Server

    assert isinstance(ec2_server, Ec2Server)
    topo = Topology("cvk", 2).create()
    site: AwsSite | None = None
    daemons: list[Daemon] = []
    try:
        site = AwsSite(topo, ec2, ec2_server.port)
        for node, prio in zip(topo.nodes, (100, 90), strict=True):
            conf = tmp_path / f"keepalived-{node.name}.conf"
            peers = [n for n in topo.nodes if n is not node]
            extra = f'    notify "{CLOUDVIP} notify -f {conf}"\n' + site.cloud_block("secondary_ip")
            conf.write_text(f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
                node, peers, priority=prio, version=3, advert=0.1, extra=extra))  # cloud block last
            daemons.append(Daemon(topo, node, "companion", conf, tmp_path / "c").start())
            daemons.append(Daemon(topo, node, "keepalived", conf, tmp_path / "k").start())
        companion_a, keepalived_a, companion_b, keepalived_b = daemons
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]] and keepalived_a.has_vip(), 15, 0.05), \
            companion_a.log + keepalived_a.log
        time.sleep(0.5)
        reset_observations()
        keepalived_a.kill()  # the whole node: keepalived and its companion
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[1]], 10, 0.05), \
            companion_b.log + keepalived_b.log
        assert writes() == {ec2.enis[1]: 1}
        assert "keepalived says MASTER (notify): taking the VIP" in companion_b.log
        assert keepalived_b.has_vip()  # keepalived carries the address; the companion left the host alone
    finally:
        for d in daemons:
            if d.alive:
                d.kill()
        if site:
            site.close()
        topo.destroy()
