"""Companion mode against the emulated EC2: keepalived's events, by socket or notify_fifo, move
the VIP; a burst costs one move; `cloudvip notify` without a companion moves it itself; and the
real keepalived in namespaces, with a companion next to each, makes EC2 follow its failover."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudvip.companion import Companion
from cloudvip.lab.aws_site import AwsSite
from cloudvip.lab.daemons import VIP, Daemon, instance_block
from cloudvip.lab.ec2_emulator import Ec2World, reset_observations, writes
from cloudvip.lab.topology import Topology

from ..netns.conftest import needs_keepalived, needs_root
from .conftest import REGION

CLOUDVIP = str(Path(sys.executable).parent / "cloudvip")


def conf_for(ec2: Ec2World, index: int, path: Path, extra_global: str = "") -> Path:
    path.write_text(f"""global_defs {{
    router_id n{index + 1}
{extra_global}}}
vrrp_instance VI_1 {{
    state BACKUP
    interface lo
    virtual_router_id 51
    priority 100
    virtual_ipaddress {{
        {VIP}/24
    }}
    cloud aws {{
        mode secondary_ip
        instance_id {ec2.instances[index]}
        eni {ec2.enis[index]}
        region {REGION}
        endpoint {ec2.endpoint}
        reconcile_interval 60
    }}
}}
""")
    return path


async def send(sock: str, line: str) -> str:
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(line.encode() + b"\n")
    answer = (await reader.readline()).decode().strip()
    writer.close()
    return answer


async def running(comp: Companion) -> asyncio.Task[int]:
    task = asyncio.create_task(comp.run())
    for _ in range(200):
        if os.path.exists(comp.socket) or task.done():
            break
        await asyncio.sleep(0.02)
    assert not task.done(), "companion exited"
    return task


def test_a_burst_costs_one_move_and_the_latest_state_wins(ec2: Ec2World, tmp_path: Path) -> None:
    comp = Companion(conf_for(ec2, 0, tmp_path / "k.conf"), None, str(tmp_path / "c.sock"))

    async def go() -> list[str]:
        task = await running(comp)
        answers = [await send(comp.socket, f"INSTANCE VI_1 {s} 100") for s in ("MASTER", "BACKUP", "MASTER")]
        mover = comp.movers["VI_1"]
        assert await mover.settle(10) and mover.actual is True
        answers.append(await send(comp.socket, "GROUP G1 MASTER 0"))
        answers.append(await send(comp.socket, "INSTANCE VI_9 MASTER 100"))
        answers.append(await send(comp.socket, "nonsense"))
        comp._stop.set()
        assert await task == 0
        return answers

    answers = asyncio.run(go())
    assert answers[:3] == ["queued VI_1 MASTER", "queued VI_1 BACKUP", "queued VI_1 MASTER"]
    assert answers[3].startswith("ignored: a group event") and answers[4] == "ignored: VI_9 has no cloud block"
    assert answers[5].startswith("error: not a keepalived event")
    assert ec2.vip_enis(VIP) == [ec2.enis[0]]
    assert writes() == {ec2.enis[0]: 1}  # MASTER, BACKUP, MASTER during one move: one write
    assert not os.path.exists(comp.socket)  # removed on exit


def test_events_from_keepalived_notify_fifo(ec2: Ec2World, tmp_path: Path) -> None:
    fifo = tmp_path / "keepalived.fifo"
    comp = Companion(conf_for(ec2, 1, tmp_path / "k.conf", f"    notify_fifo {fifo}\n"), None,
                     str(tmp_path / "c.sock"))

    async def go() -> None:
        task = await running(comp)
        for _ in range(100):
            if fifo.exists():
                break
            await asyncio.sleep(0.02)
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b'INSTANCE "VI_1" MASTER 100\n')  # keepalived's fifo line
        os.close(fd)
        for _ in range(250):
            if ec2.vip_enis(VIP) == [ec2.enis[1]]:
                break
            await asyncio.sleep(0.02)
        comp._stop.set()
        await task

    asyncio.run(go())
    assert ec2.vip_enis(VIP) == [ec2.enis[1]]


def test_notify_without_a_companion_moves_the_vip_itself(ec2: Ec2World, tmp_path: Path) -> None:
    conf = conf_for(ec2, 0, tmp_path / "k.conf")
    done = subprocess.run([CLOUDVIP, "notify", "-f", str(conf), "--socket", str(tmp_path / "none.sock"),
                           "INSTANCE", "VI_1", "MASTER", "100"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "no companion listens" in done.stderr
    assert ec2.vip_enis(VIP) == [ec2.enis[0]] and writes() == {ec2.enis[0]: 1}


@needs_root
@needs_keepalived
@pytest.mark.netns
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
