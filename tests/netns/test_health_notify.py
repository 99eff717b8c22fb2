"""vrrp_script / track_file / native HAProxy checks moving the master, notifications in
keepalived's formats, and sync groups: each compared with the real keepalived where it applies."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cloudvip_lab.daemons import VIP, Daemon, instance_block
from cloudvip_lab.haproxy import Haproxy
from cloudvip_lab.probe import Probe
from cloudvip.state_machine import master_down_interval

from .conftest import Cluster, needs_keepalived, needs_root, require

pytestmark = [needs_root, pytest.mark.netns]
FAST = dict(version=3, advert=0.1)


def executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


class FifoReader:
    """Reads a notify FIFO in a thread (keepalived creates it; cloudvip too)."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines = path, []  # type: ignore[var-annotated]
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.path.exists() and not self._stop:
            time.sleep(0.01)
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        buf = b""
        while not self._stop:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                chunk = b""
            if not chunk:
                time.sleep(0.01)
                continue
            buf += chunk
            *done, buf = buf.split(b"\n")
            self.lines += [d.decode() for d in done]
        os.close(fd)

    def stop(self) -> list[str]:
        time.sleep(0.3)
        self._stop = True
        self._thread.join(2)
        return list(self.lines)


def notify_run(cluster: Cluster, kind: str, tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """A pair with every notify hook: start, elect, SIGTERM the master, stop the other.
    Returns per node (fifo lines, script calls)."""
    tmp.mkdir()
    out: dict[str, tuple[list[str], list[str]]] = {}
    daemons, readers, logs = [], [], []
    for i, prio in ((0, 100), (1, 90)):  # master first: no start-up race
        node = cluster.topo.nodes[i]
        log = tmp / f"calls{i}"
        logs.append(log)
        rec = executable(tmp / f"rec{i}.sh", f'echo "$*" >> {log}\n')
        extra = "".join(f'    notify_{s} "{rec} {s}"\n' for s in ("master", "backup", "fault", "stop")) + \
            f'    notify "{rec}"\n'
        fifo = tmp / f"fifo{i}"
        readers.append(FifoReader(fifo))
        conf = (f"global_defs {{\n    router_id {node.name}\n    script_user root\n    notify_fifo {fifo}\n}}\n\n"
                + instance_block(node, [n for n in cluster.topo.nodes if n is not node], priority=prio,
                                 extra=extra, version=2, advert=1))
        d = Daemon(cluster.topo, node, kind, conf, tmp)
        cluster.daemons.append(d)
        daemons.append(d.start())
        if i == 0:
            assert cluster.wait_holder(d, 8), cluster.logs()
    master, backup = daemons
    time.sleep(1.5)
    assert cluster.holders() == [master], cluster.logs()
    time.sleep(0.5)
    master.term()
    assert cluster.wait_holder(backup, 5), cluster.logs()
    time.sleep(0.5)
    backup.term()
    for i, (reader, log) in enumerate(zip(readers, logs, strict=True)):
        calls = log.read_text().splitlines() if log.exists() else []
        out[["master", "backup"][i]] = (reader.stop(), sorted(calls))
    cluster.daemons.clear()
    return out


@needs_keepalived
def test_notify_scripts_and_fifo_match_keepalived(cluster: Cluster, tmp_path: Path) -> None:
    theirs = notify_run(cluster, "keepalived", tmp_path / "k")
    for d in cluster.topo.nodes:
        subprocess.run(["ip", "-n", d.name, "addr", "del", f"{VIP}/24", "dev", "eth0"], capture_output=True)
    ours = notify_run(cluster, "cloudvip", tmp_path / "c")
    assert theirs["master"][0] == ['INSTANCE "VI_1" BACKUP 100', 'INSTANCE "VI_1" MASTER 100',
                                   'INSTANCE "VI_1" STOP 100']
    assert ours == theirs


def _script_pair(cluster: Cluster, tmp: Path, check: str, weight: int, kinds: tuple[str, str]) -> tuple:
    """n1 (100) tracks `check` with `weight`; n2 (90) does not. Both elect n1."""
    a_node = cluster.topo.nodes[0]
    track = "    track_script {\n        chk\n    }\n"
    block = instance_block(a_node, [cluster.topo.nodes[1]], priority=100, extra=track, **FAST)
    conf = (f"global_defs {{\n    router_id a\n    script_user root\n}}\n\n"
            f"vrrp_script chk {{\n    {check}\n    interval 0.2\n    weight {weight}\n    fall 1\n    rise 1\n}}\n\n"
            + block)
    a = Daemon(cluster.topo, a_node, kinds[0], conf, tmp)
    cluster.daemons.append(a)
    b = cluster.daemon(1, kinds[1], priority=90, **FAST).start()
    a.start()
    assert cluster.wait_holder(a, 5), cluster.logs()
    return a, b


@pytest.mark.parametrize("backup_kind", ["cloudvip", "keepalived"])
def test_failing_weighted_script_hands_the_vip_over(cluster: Cluster, tmp_path: Path, backup_kind: str) -> None:
    require(backup_kind)
    flag = tmp_path / "healthy"
    flag.touch()
    chk = executable(tmp_path / "chk.sh", f"test -e {flag}\n")
    a, b = _script_pair(cluster, tmp_path, f'script "{chk}"', -50, ("cloudvip", backup_kind))
    flag.unlink()
    assert cluster.wait_holder(b, 5), cluster.logs()  # priority 50 < 90: the backup preempts
    flag.touch()
    assert cluster.wait_holder(a, 5), cluster.logs()  # back to 100: n1 preempts again


def test_weight_zero_failure_is_fault_with_skew_time_handover(cluster: Cluster, tmp_path: Path) -> None:
    flag = tmp_path / "healthy"
    flag.touch()
    chk = executable(tmp_path / "chk.sh", f"test -e {flag}\n")
    a, b = _script_pair(cluster, tmp_path, f'script "{chk}"', 0, ("cloudvip", "cloudvip"))
    flag.unlink()
    assert cluster.wait_holder(b, 3), cluster.logs()
    assert "MASTER -> FAULT (tracked script:chk failed)" in a.log
    assert not a.has_vip()


CHECKS = {"killall": 'script "/usr/bin/killall -0 haproxy"',
          "native": "haproxy_socket {sock}\n    haproxy_frontend fe_web"}


@pytest.mark.parametrize("preempt", [True, False], ids=["preempt", "nopreempt"])
@pytest.mark.parametrize("check", ["killall", "native"])
def test_stopping_haproxy_moves_the_vip(cluster: Cluster, tmp_path: Path, check: str, preempt: bool) -> None:
    if shutil.which("haproxy") is None or shutil.which("killall") is None:
        pytest.skip("haproxy/killall not installed")
    hap = Haproxy(cluster.topo, cluster.topo.nodes[0], tmp_path)
    hap.start()
    try:
        interval, fall = 0.2, 2
        # a backup with nopreempt never takes over from a weakened master: there the check
        # must put the master in FAULT (weight 0), which makes it resign
        weight = -50 if preempt else 0
        node = cluster.topo.nodes[0]
        track = "    track_script {\n        chk\n    }\n"
        conf = (f"global_defs {{\n    router_id a\n    script_user root\n}}\n\n"
                f"vrrp_script chk {{\n    {CHECKS[check].format(sock=hap.sock)}\n    interval {interval}\n"
                f"    weight {weight}\n    fall {fall}\n    rise 1\n}}\n\n"
                + instance_block(node, [cluster.topo.nodes[1]], priority=100, extra=track, nopreempt=not preempt,
                                 **FAST))
        a = Daemon(cluster.topo, node, "cloudvip", conf, tmp_path).start()
        cluster.daemons.append(a)
        assert cluster.wait_holder(a, 5), cluster.logs()  # a first: with nopreempt, b must join as backup
        b = cluster.daemon(1, "cloudvip", priority=90, nopreempt=not preempt, **FAST).start()
        time.sleep(0.5)
        assert cluster.holders() == [a], cluster.logs()
        stopped = time.monotonic()
        hap.stop()
        moved = cluster.wait_holder(b, 5)
        assert moved is not None, cluster.logs()
        # interval x fall to notice, then the backup waits out its Master_Down_Interval
        bound = interval * fall + master_down_interval(3, 90, 10) + interval
        assert moved - stopped <= bound + 0.3, (moved - stopped, bound)
        hap.start()
        if preempt:
            assert cluster.wait_holder(a, 5), cluster.logs()
        else:
            time.sleep(2)
            assert cluster.holders() == [b], cluster.logs()
    finally:
        hap.stop()


def test_native_check_follows_backend_servers(cluster: Cluster, tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy not installed")
    hap = Haproxy(cluster.topo, cluster.topo.nodes[0], tmp_path, server_opts=" check inter 100ms fall 1")
    node = cluster.topo.nodes[0]
    server = subprocess.Popen(cluster.topo.exec_args(node, "python3", "-m", "http.server", "--bind", "127.0.0.1",
                                                     "18081"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        hap.start()
        time.sleep(0.5)
        a, b = _script_pair(cluster, tmp_path, f"haproxy_socket {hap.sock}\n    haproxy_backend be_web", -50,
                            ("cloudvip", "cloudvip"))
        server.kill()  # the only server goes DOWN in HAProxy: the check fails, no subprocess involved
        assert cluster.wait_holder(b, 5), cluster.logs()
        assert "backend be_web: 0 of 1 servers UP" in a.log
    finally:
        server.kill()
        hap.stop()


def test_hung_script_is_killed_and_adverts_keep_their_schedule(cluster: Cluster, tmp_path: Path) -> None:
    hang = executable(tmp_path / "hang.sh", "sleep 30\n")
    a, b = _script_pair(cluster, tmp_path, f'script "{hang}"\n    timeout 0.5', -10, ("cloudvip", "cloudvip"))
    probe = Probe(cluster.topo, cluster.topo.nodes[1])
    try:
        start = time.monotonic()
        time.sleep(3)  # scripts started every 0.2 s, each hanging until killed at 0.5 s
        times = probe.adverts(str(cluster.topo.nodes[0].ip), start, time.monotonic())
    finally:
        probe.close()
    gaps = [(t2 - t1) * 1000 for t1, t2 in zip(times, times[1:], strict=False)]
    jitter = max(abs(g - 100) for g in gaps)
    print(f"adverts while scripts hang: {len(times)} in 3 s, gap {min(gaps):.1f}..{max(gaps):.1f} ms, "
          f"max jitter {jitter:.1f} ms")
    assert len(times) >= 28 and jitter < 40
    assert "timed out after 0.5 s, killed" in a.log
    assert cluster.holders() == [a]  # 100 - 10 = 90, equal to b's: a backup never preempts an equal master


def test_track_file_weight(cluster: Cluster, tmp_path: Path) -> None:
    f = tmp_path / "weight"
    f.write_text("0\n")
    a_node = cluster.topo.nodes[0]
    conf = (f"global_defs {{\n    router_id a\n}}\n\ntrack_file tf {{\n    file {f}\n    weight -30\n}}\n\n" +
            instance_block(a_node, [cluster.topo.nodes[1]], priority=100,
                           extra="    track_file {\n        tf\n    }\n", **FAST))
    a = Daemon(cluster.topo, a_node, "cloudvip", conf, tmp_path)
    cluster.daemons.append(a)
    b = cluster.daemon(1, "cloudvip", priority=90, **FAST).start()
    a.start()
    assert cluster.wait_holder(a, 5), cluster.logs()
    f.write_text("1\n")  # 100 - 30 = 70 < 90
    assert cluster.wait_holder(b, 5), cluster.logs()


def _group_conf(cluster: Cluster, i: int, prio: int, flag: Path) -> str:
    node = cluster.topo.nodes[i]
    peers = [n for n in cluster.topo.nodes if n is not node]
    track = "    track_script {\n        chk\n    }\n" if i == 0 else ""
    return (f"global_defs {{\n    router_id n{i}\n    script_user root\n}}\n\n"
            f'vrrp_script chk {{\n    script "/usr/bin/test -e {flag}"\n    interval 0.2\n    weight 0\n}}\n\n'
            + instance_block(node, peers, name="VI_1", vrid=51, priority=prio, vip=f"{VIP}/24", **FAST)
            + instance_block(node, peers, name="VI_2", vrid=52, priority=prio, vip="198.51.100.101/24",
                             extra=track, **FAST)
            + "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n")


@pytest.mark.parametrize("kind", ["cloudvip", "keepalived"])
def test_sync_group_member_fault_moves_the_whole_group(cluster: Cluster, tmp_path: Path, kind: str) -> None:
    require(kind)
    flag = tmp_path / "ok"
    flag.touch()
    daemons = [Daemon(cluster.topo, cluster.topo.nodes[i], kind, _group_conf(cluster, i, p, flag), tmp_path)
               for i, p in ((1, 90), (0, 100))]
    cluster.daemons += daemons
    for d in daemons:
        d.start()
    b, a = daemons
    both = ("198.51.100.100", "198.51.100.101")
    assert cluster.topo.wait_for(lambda: all(a.has_vip(v) for v in both), 5), cluster.logs()
    flag.unlink()  # only VI_2 tracks the check, but VI_1 must follow it
    assert cluster.topo.wait_for(lambda: all(b.has_vip(v) and not a.has_vip(v) for v in both), 5), cluster.logs()


def test_track_interface_with_weight_lowers_priority_without_fault(cluster: Cluster, tmp_path: Path) -> None:
    node = cluster.topo.nodes[0]
    for args in (["link", "add", "t0", "type", "veth", "peer", "name", "t1"], ["link", "set", "t0", "up"],
                 ["link", "set", "t1", "up"]):
        subprocess.run(["ip", "-n", node.name, *args], check=True)
    track = "    track_interface {\n        t0 weight -50\n    }\n"
    a = Daemon(cluster.topo, node, "cloudvip",
               "global_defs {\n    router_id a\n}\n\n" +
               instance_block(node, [cluster.topo.nodes[1]], priority=100, extra=track, **FAST), tmp_path).start()
    cluster.daemons.append(a)
    b = cluster.daemon(1, "cloudvip", priority=90, **FAST).start()
    assert cluster.wait_holder(a, 5), cluster.logs()
    subprocess.run(["ip", "-n", node.name, "link", "set", "t1", "down"], check=True)  # t0 loses its carrier
    assert cluster.wait_holder(b, 5), cluster.logs()
    assert "FAULT" not in a.log  # a weighted interface only lowers the priority
    subprocess.run(["ip", "-n", node.name, "link", "set", "t1", "up"], check=True)
    assert cluster.wait_holder(a, 5), cluster.logs()


def test_track_process_weight_zero_faults_and_recovers(cluster: Cluster, tmp_path: Path) -> None:
    """vrrp_track_process on a process the test runs (the namespaces share the host's /proc): gone,
    the master goes FAULT and the backup takes over; back, the master preempts. Not compared with
    keepalived: its process connector is refused inside a network namespace ("Failed to set/clear
    process event listen - errno 111"), so there it holds the instance in FAULT for good; cloudvip
    reads /proc and works in a namespace or a container alike."""
    kind = "cloudvip"
    marker = f"31337.{os.getpid()}"  # a sleep nobody else runs
    a_node = cluster.topo.nodes[0]
    conf = (f"global_defs {{\n    router_id a\n}}\n\nvrrp_track_process sleeper {{\n    process /bin/sleep {marker}\n"
            "    weight 0\n}\n\n" + instance_block(a_node, [cluster.topo.nodes[1]], priority=100,
                                                  extra="    track_process {\n        sleeper\n    }\n", **FAST))
    sleeper = subprocess.Popen(["/bin/sleep", marker])
    try:
        a = Daemon(cluster.topo, a_node, kind, conf, tmp_path)
        cluster.daemons.append(a)
        b = cluster.daemon(1, "cloudvip", priority=90, **FAST).start()
        a.start()
        assert cluster.wait_holder(a, 5), cluster.logs()
        sleeper.kill()
        sleeper.wait()
        assert cluster.wait_holder(b, 5), cluster.logs()
        sleeper = subprocess.Popen(["/bin/sleep", marker])
        assert cluster.wait_holder(a, 5), cluster.logs()
    finally:
        sleeper.kill()
        sleeper.wait()
