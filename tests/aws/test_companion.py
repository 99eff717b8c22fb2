"""Companion mode against the emulated EC2, in namespaces: keepalived's events, by socket or
notify_fifo, move the VIP; a burst costs one move; events out of order end in the state
keepalived is really in; a companion started while keepalived is master takes it; `cloudvip
notify` without a companion moves it itself, but not on a late event (keepalived no longer
carries the VIP); the socket serves root and keepalived's script users only; a FIFO in a
private /tmp is refused and an overlong FIFO line does not end the reader. With the real
keepalived, hardened (enable_script_security, script_user keepalived_script) and a keepalived.conf
that `keepalived -t` accepts: EC2 follows its failover, and after a partition the VIP goes back
to the master at once."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip.companion_events import socket_path
from cloudvip_lab.aws_site import AwsSite
from cloudvip_lab.daemons import VIP, Daemon, instance_block
from cloudvip_lab.ec2_emulator import Ec2World, reset_observations, writes
from cloudvip_lab.hardened_keepalived import PairFiles, ScriptUser, SecureDir, notify_wrapper, write_pair_files
from cloudvip_lab.topology import Topology, ip

from ..netns.conftest import needs_keepalived, needs_root

CLOUDVIP = str(Path(sys.executable).parent / "cloudvip")


@pytest.fixture
def site(ec2: Ec2World, ec2_server: object, tmp_path: Path) -> Iterator[tuple[Topology, AwsSite]]:
    """Namespaces as EC2 instances, as the companion runs there next to keepalived."""
    from cloudvip_lab.ec2_emulator import Ec2Server

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


def companion_conf(topo: Topology, aws: AwsSite, path: Path, extra_global: str = "", reconcile: float = 60) -> Path:
    """A companion file and the keepalived.conf it names (path.with_suffix('.keepalived'))."""
    node, peer = topo.nodes
    kconf = path.with_suffix(".keepalived")
    kconf.write_text(f"global_defs {{\n    router_id {node.name}\n{extra_global}}}\n\n" + instance_block(node, [peer],
                                                                                                  priority=100))
    path.write_text(f"keepalived_config {kconf.name}\nvrrp_instance VI_1 {{\n"
                    + aws.cloud_block("secondary_ip", f"        reconcile_interval {reconcile:g}\n") + "}\n")
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
        with open(fifo, "wb") as f:  # an overlong line (more than the pipe holds), then keepalived's line
            f.write(b"x" * 70_000 + b'\nINSTANCE "VI_1" MASTER 100\n')
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]], 10, 0.05), d.log
        # a companion (re)started while keepalived is master takes the VIP without waiting for an event
        d.kill()
        ec2.client.unassign_private_ip_addresses(NetworkInterfaceId=ec2.enis[0], PrivateIpAddresses=[VIP])
        d.start()
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]], 15, 0.05), d.log
        assert "keepalived is master (it carries the VIP)" in d.log
        assert "a line over 65536 bytes dropped" in d.log
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




def test_events_out_of_order_end_in_the_state_keepalived_is_in(ec2: Ec2World, site: tuple[Topology, AwsSite],
                                                               tmp_path: Path) -> None:
    """keepalived forks its notify scripts unordered: the companion follows the host, not the last event."""
    topo, aws = site
    d = Daemon(topo, topo.nodes[0], "companion", companion_conf(topo, aws, tmp_path / "c.conf", reconcile=2),
               tmp_path).start()
    try:
        sock = started(topo, d)
        keepalived_master(topo, True)
        # MASTER, BACKUP, MASTER as keepalived went, the last two swapped on the way
        for state in ("MASTER", "MASTER", "BACKUP"):
            assert asyncio.run(send(sock, f"INSTANCE VI_1 {state} 100")).startswith("queued")
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]], 10, 0.05), d.log
        time.sleep(1.5)  # past the re-check after the burst
        assert writes() == {ec2.enis[0]: 1}, d.log
        assert "keepalived said BACKUP but carries the VIP" in d.log
        # it still holds the VIP: a removal behind its back is reclaimed by reconciliation
        aws.remove_in_cloud("secondary_ip", VIP, ec2.enis[0])
        reset_observations()  # the companion's writes only
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]], 6, 0.05), d.log
        assert writes() == {ec2.enis[0]: 1}

        # keepalived steps down (its BACKUP and a late MASTER arrive swapped): no claim, nothing held
        mark = len(d.log)
        keepalived_master(topo, False)
        for state in ("BACKUP", "MASTER"):
            asyncio.run(send(sock, f"INSTANCE VI_1 {state} 100"))
        time.sleep(1.5)
        aws.remove_in_cloud("secondary_ip", VIP, ec2.enis[0])
        reset_observations()
        time.sleep(3)  # a reconciliation round: a companion that thought it held the VIP would act
        assert writes() == {}, d.log[mark:]
        after = d.log[mark:]
        assert "keepalived said MASTER but does not carry the VIP" in after
        assert "re-asserting" not in after and "split brain" not in after
    finally:
        if d.alive:
            d.kill()


def _send_as(user: str, sock: str, line: str) -> str:
    """What the companion answers a client running as `user` (the system Python: any user may run it)."""
    code = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); "
            "s.sendall(sys.argv[2].encode()+b'\\n'); print(s.recv(4096).decode().strip())")
    done = subprocess.run(["/usr/bin/python3", "-c", code, sock, line], user=user, capture_output=True, text=True,
                          timeout=30)
    return (done.stdout + done.stderr).strip()


def test_the_socket_serves_root_and_keepalived_script_users_only(ec2: Ec2World, site: tuple[Topology, AwsSite],
                                                                  tmp_path: Path) -> None:
    topo, aws = site
    conf = companion_conf(topo, aws, tmp_path / "c.conf", "    script_user nobody\n")
    d = Daemon(topo, topo.nodes[0], "companion", conf, tmp_path).start()
    try:
        sock = started(topo, d)
        assert "events on" in d.log and "from root and nobody" in d.log
        # reachable by the script user (searchable, not listable), apart from the agent's root-only directory
        assert stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode) == 0o711
        assert os.path.dirname(sock) != os.path.dirname(socket_path(sock, "agent"))
        assert _send_as("nobody", sock, "INSTANCE VI_1 BACKUP 100") == "queued VI_1 BACKUP"
        refused = _send_as("daemon", sock, "INSTANCE VI_1 MASTER 100")
        assert refused.startswith("error: not allowed: uid 1 "), refused
        assert "event refused: uid 1" in d.log
    finally:
        if d.alive:
            d.kill()


def test_a_notify_fifo_in_a_private_tmp_is_refused(tmp_path: Path) -> None:
    """systemd's PrivateTmp=true gives the companion a /tmp of its own: it would read its own FIFO."""
    kconf = tmp_path / "keepalived.conf"
    kconf.write_text("global_defs {\n    notify_fifo /var/tmp/keepalived.fifo\n}\nvrrp_instance VI_1 {\n"
                     "    interface eth0\n    virtual_router_id 51\n    virtual_ipaddress {\n        10.0.0.100/24\n"
                     "    }\n}\n")
    conf = tmp_path / "companion.conf"
    conf.write_text(f"keepalived_config {kconf}\nvrrp_instance VI_1 {{\n    cloud aws {{\n        mode secondary_ip\n"
                    "        region eu-west-1\n    }\n}\n")
    private = Path("/var/tmp") / f"cloudvip-test-private-{os.getpid()}"
    private.mkdir()
    try:
        command = (f"mount --make-rprivate / && mount --bind {private} /var/tmp && "
                   f"exec {sys.executable} -m cloudvip companion -f {conf} --socket {tmp_path}/s.sock")
        done = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "notify_fifo /var/tmp/keepalived.fifo is in /var/tmp, which is private to this process" in done.stderr
        assert not list(private.iterdir())  # it made no FIFO of its own
    finally:
        private.rmdir()


@pytest.fixture(scope="module")
def script_user() -> Iterator[str]:
    with ScriptUser() as user:
        yield user.name


@needs_keepalived
def test_hardened_keepalived_moves_the_vip_and_hands_it_back_after_a_partition(
        ec2: Ec2World, ec2_server: object, tmp_path: Path, script_user: str) -> None:
    """keepalived with enable_script_security runs `cloudvip notify` as keepalived_script (its
    `keepalived -t` verdicts: test_companion_keepalived_t.py). A partition costs one claim per
    side, and on healing the VIP goes back to the master at once (no split-brain hold): handed over
    by the node that steps down, or re-asserted on the master's MASTER_RX_LOWER_PRI, whichever
    side hears the other first."""
    from cloudvip_lab.ec2_emulator import Ec2Server

    assert isinstance(ec2_server, Ec2Server)
    topo = Topology("cvk", 2).create()
    site: AwsSite | None = None
    secure = SecureDir()
    daemons: list[Daemon] = []
    try:
        site = AwsSite(topo, ec2, ec2_server.port)
        wrapper = notify_wrapper(secure.path)
        files: list[PairFiles] = []
        for node, prio in zip(topo.nodes, (100, 90), strict=True):
            pair = write_pair_files(tmp_path / node.name, node, [n for n in topo.nodes if n is not node],
                                    priority=prio, notify=wrapper,
                                    cloud_block=site.cloud_block("secondary_ip", "        reconcile_interval 2\n"))
            files.append(pair)
            companion = Daemon(topo, node, "companion", pair.companion_conf, tmp_path / "c").start()
            started(topo, companion)  # before keepalived, as the units order them
            daemons += [companion, Daemon(topo, node, "keepalived", pair.keepalived_conf, tmp_path / "k").start()]
        companion_a, keepalived_a, companion_b, keepalived_b = daemons
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]] and keepalived_a.has_vip(), 15, 0.05), \
            companion_a.log + keepalived_a.log
        assert f"from root and {script_user}" in companion_a.log
        assert "keepalived says MASTER (notify)" in companion_a.log  # from the script user's `cloudvip notify`

        # a partition: both keepalived are master, both claim once; whichever side hears the other
        # first when it heals sets the cloud right: no split-brain hold, one claim per side
        for first, path in ((topo.nodes[0], "handed the VIP to master"), (topo.nodes[1], "hears a lower priority")):
            time.sleep(0.5)
            reset_observations()
            for node in topo.nodes:
                topo.partition_vrrp(node, True)
            assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[1]], 10, 0.05), companion_b.log
            time.sleep(3)  # node A's companion has seen the peer hold the VIP (a split brain it does not fight)
            assert ec2.vip_enis(VIP) == [ec2.enis[1]] and writes() == {ec2.enis[1]: 1}
            marks = len(companion_a.log), len(companion_b.log)
            # A healed first: B hears A and steps down before A hears B (B hands over); B healed
            # first: A hears B's lower priority (MASTER_RX_LOWER_PRI) before B hears A
            topo.partition_vrrp(first, False)
            healed = time.monotonic()
            if first is topo.nodes[0]:  # B stepped down, and its adverts are still dropped
                assert topo.wait_for(lambda: not keepalived_b.has_vip(), 2, 0.02), keepalived_b.log
            else:  # A re-asserted, and its adverts are still dropped
                assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]], 2 + 2, 0.02), companion_a.log
            topo.partition_vrrp([n for n in topo.nodes if n is not first][0], False)
            back = topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[0]] and not keepalived_b.has_vip(), 2 + 2, 0.02)
            assert back is not None, companion_a.log[marks[0]:] + companion_b.log[marks[1]:]
            assert writes() == {ec2.enis[0]: 1, ec2.enis[1]: 1}
            assert path in companion_a.log[marks[0]:] + companion_b.log[marks[1]:]
            print(f"partition healed ({path}): VIP back on node A after {time.monotonic() - healed:.3f} s")

        # node A dies: node B's keepalived takes over, its companion moves the VIP with one write
        time.sleep(0.5)
        reset_observations()
        keepalived_a.kill()
        companion_a.kill()
        assert topo.wait_for(lambda: ec2.vip_enis(VIP) == [ec2.enis[1]], 10, 0.05), \
            companion_b.log + keepalived_b.log
        assert writes() == {ec2.enis[1]: 1}
        assert keepalived_b.has_vip()  # keepalived carries the address; the companion left the host alone
    finally:
        for d in daemons:
            if d.alive:
                d.kill()
        if site:
            site.close()
        topo.destroy()
        secure.close()
