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

from cloudvip.lab.daemons import VIP, Daemon, instance_block

from .conftest import Cluster, needs_keepalived, needs_root

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
    for i, prio in ((1, 90), (0, 100)):
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
    backup, master = daemons
    assert cluster.wait_holder(master, 8), cluster.logs()
    time.sleep(0.5)
    master.term()
    assert cluster.wait_holder(backup, 5), cluster.logs()
    time.sleep(0.5)
    backup.term()
    for i, (reader, log) in enumerate(zip(readers, logs, strict=True)):
        calls = log.read_text().splitlines() if log.exists() else []
        out[["backup", "master"][i]] = (reader.stop(), sorted(calls))
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
    if backup_kind == "keepalived" and shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed")
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


def test_tutorial_killall_check_with_real_haproxy(cluster: Cluster, tmp_path: Path) -> None:
    if shutil.which("haproxy") is None or shutil.which("killall") is None:
        pytest.skip("haproxy/killall not installed")
    cfg = executable(tmp_path / "h.cfg", "")
    cfg.write_text("global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout connect 1s\n"
                   "    timeout client 1s\n    timeout server 1s\nlisten l\n    bind 127.0.0.1:18080\n")
    node = cluster.topo.nodes[0]
    hap = subprocess.Popen(cluster.topo.exec_args(node, "haproxy", "-db", "-f", str(cfg)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        a, b = _script_pair(cluster, tmp_path, 'script "/usr/bin/killall -0 haproxy"', -50, ("cloudvip", "cloudvip"))
        hap.kill()
        hap.wait()
        assert cluster.wait_holder(b, 5), cluster.logs()
    finally:
        hap.kill()


def test_native_haproxy_check_follows_backend_servers(cluster: Cluster, tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy not installed")
    sock = tmp_path / "admin.sock"
    cfg = tmp_path / "h.cfg"
    cfg.write_text(f"global\n    stats socket {sock} mode 600 level admin\ndefaults\n    mode tcp\n"
                   "    timeout connect 200ms\n    timeout client 1s\n    timeout server 1s\n"
                   "backend be_web\n    server s1 127.0.0.1:18081 check inter 100ms fall 1 rise 1\n"
                   "frontend fe_web\n    bind 127.0.0.1:18080\n    default_backend be_web\n")
    node = cluster.topo.nodes[0]
    server = subprocess.Popen(cluster.topo.exec_args(node, "python3", "-m", "http.server", "--bind", "127.0.0.1",
                                                     "18081"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hap = subprocess.Popen(cluster.topo.exec_args(node, "haproxy", "-db", "-f", str(cfg)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert cluster.topo.wait_for(sock.exists, 5)
        time.sleep(0.5)
        a, b = _script_pair(cluster, tmp_path, f"haproxy_socket {sock}\n    haproxy_backend be_web", -50,
                            ("cloudvip", "cloudvip"))
        server.kill()  # the only server goes DOWN in HAProxy: the check fails without any subprocess
        assert cluster.wait_holder(b, 5), cluster.logs()
        assert "backend be_web: 0 of 1 servers UP" in a.log
    finally:
        server.kill()
        hap.kill()


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
    if kind == "keepalived" and shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed")
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
