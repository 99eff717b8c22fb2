"""`cloudvip status`, `takeover` and `release` against running agents in namespaces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from cloudvip_lab.daemons import Daemon, vrrp_conf
from cloudvip_lab.topology import Topology

from .conftest import full_status, needs_root, status

pytestmark = [needs_root]
CLOUDVIP = [sys.executable, "-m", "cloudvip"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLOUDVIP + list(args), capture_output=True, text=True, timeout=30)


def scrape(topo: Topology, node: Any, port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics inside the node's namespace, parsed by prometheus-client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = subprocess.run(topo.exec_args(node, "curl", "-sf", f"http://127.0.0.1:{port}/metrics"),
                          capture_output=True, text=True, timeout=10, check=True).stdout
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_status_takeover_release(tmp_path: Path) -> None:
    topo = Topology("cvc", 2).create()
    daemons: list[Daemon] = []
    try:
        n1, n2 = topo.nodes
        a = Daemon(topo, n1, "cloudvip", vrrp_conf(n1, [n2], priority=100, version=3, advert=0.1), tmp_path,
                   args=("--metrics", "9723")).start()
        b = Daemon(topo, n2, "cloudvip", vrrp_conf(n2, [n1], priority=90, version=3, advert=0.1), tmp_path).start()
        daemons += [a, b]
        assert topo.wait_for(lambda: a.has_vip() and not b.has_vip(), 10, 0.05), a.log + b.log
        assert topo.wait_for(lambda: status(b)["master"]["address"] == str(n1.ip), 5, 0.1)
        sa, sb = status(a), status(b)
        assert (sa["state"], sa["priority"]["effective"], sa["priority"]["base"]) == ("MASTER", 100, 100)
        assert sb["state"] == "BACKUP" and sb["master"] == {"address": str(n1.ip), "priority": 100}
        assert sa["transitions"][-1]["to"] == "MASTER" and sa["provider"]["name"] == "linux"
        assert sa["counters"]["adverts_sent"] > 0 and sb["counters"]["adverts_received"] > 0
        from cloudvip.companion_events import socket_path

        sock = Path(socket_path(str(a.conf), "agent"))
        assert sock.stat().st_mode & 0o077 == 0 and sock.parent.stat().st_mode & 0o077 == 0  # root-only
        table = cli("status", "-f", str(a.conf)).stdout
        assert "VI_1: MASTER  priority 100 (base 100" in table and "-> MASTER" in table
        proc = full_status(a)["process"]  # what a leak would show in
        assert proc["pid"] in a.pids() and proc["tasks"] > 0 and proc["fds"] > 3 and proc["rss_kib"] > 10_000
        assert f"process {proc['pid']}: " in table
        metrics = scrape(topo, n1, 9723)
        assert metrics[("cloudvip_state", (("instance", "VI_1"), ("state", "MASTER")))] == 1.0
        assert metrics[("cloudvip_priority", (("instance", "VI_1"), ("kind", "effective")))] == 100.0
        assert metrics[("cloudvip_adverts_sent_total", (("instance", "VI_1"),))] > 0
        assert metrics[("cloudvip_vip_held", (("instance", "VI_1"),))] == 1.0
        assert metrics[("process_open_fds", ())] > 3 and metrics[("process_resident_memory_bytes", ())] > 10e6
        take = (("instance", "VI_1"), ("le", "+Inf"), ("op", "take"), ("provider", "linux"))
        assert metrics[("cloudvip_provider_call_seconds_bucket", take)] >= 1

        # release: a hands over at once and stays out until undone
        done = cli("release", "VI_1", "-f", str(a.conf))
        assert done.returncode == 0 and "released" in done.stdout, done.stderr
        assert topo.wait_for(lambda: b.has_vip() and not a.has_vip(), 2, 0.02), a.log + b.log
        assert status(a)["state"] == "FAULT" and status(a)["override"] == "release"
        assert "operator release" in a.log
        assert cli("release", "VI_1", "--undo", "-f", str(a.conf)).returncode == 0
        assert topo.wait_for(lambda: a.has_vip() and not b.has_vip(), 5, 0.05), a.log  # preempts again
        assert status(a)["override"] is None

        # takeover: b raised to 254 preempts a
        assert cli("takeover", "VI_1", "-f", str(b.conf)).returncode == 0
        assert topo.wait_for(lambda: b.has_vip() and not a.has_vip(), 5, 0.05), b.log
        sb = status(b)
        assert sb["override"] == "takeover" and sb["priority"]["effective"] == 254
        # undone on restart
        b.kill()
        b.start()
        b_socket = Path(socket_path(str(b.conf), "agent"))  # there once b has started again
        assert topo.wait_for(lambda: a.has_vip() and b_socket.exists() and status(b)["state"] == "BACKUP", 10, 0.1), \
            b.log
        assert status(b)["priority"]["effective"] == 90 and status(b)["override"] is None

        bad = cli("takeover", "VI_9", "-f", str(a.conf))
        assert bad.returncode == 1 and "no instance 'VI_9'" in bad.stderr
    finally:
        for d in daemons:
            if d.alive:
                d.kill()
        topo.destroy()


def test_status_without_an_agent_says_so(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text("")
    done = cli("status", "-f", str(conf))
    assert done.returncode == 1 and "no agent runs for" in done.stderr
