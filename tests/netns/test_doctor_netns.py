"""`cloudvip doctor` in namespaces: it hears a running master, and finds a firewall dropping
protocol 112, a silent peer, a missing interface, a VIP carried next to another master; with
no change anywhere (no advert sent, no address added)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from cloudvip_lab.daemons import VIP, Daemon

from .conftest import Cluster, needs_root, status

pytestmark = [needs_root, pytest.mark.netns]
ADVERT = dict(version=3, advert=0.1)


def doctor(cluster: Cluster, d: Daemon) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(cluster.topo.exec_args(d.node, sys.executable, "-m", "cloudvip", "doctor", "--json",
                                                 "-f", str(d.conf)), capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)["findings"]


def failed(findings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["check"], f["found"]) for f in findings if f["status"] == "fail"]


def start_master(cluster: Cluster) -> tuple[Daemon, Daemon]:
    """Node 0's agent as master; node 1 configured but not running (doctor before the start)."""
    master = cluster.daemon(0, "cloudvip", priority=150, **ADVERT).start()
    backup = cluster.daemon(1, "cloudvip", priority=100, **ADVERT)
    assert cluster.topo.wait_for(lambda: master.has_vip(), 5), cluster.logs()
    return master, backup


def test_a_healthy_node_hears_the_master_and_passes(cluster: Cluster) -> None:
    master, backup = start_master(cluster)
    received = status(master)["counters"].get("adverts_received", 0)
    rc, findings = doctor(cluster, backup)
    assert failed(findings) == [] and rc == 0
    peer = next(f for f in findings if f["check"] == "peer")
    assert f"heard {master.node.ip} (a configured peer): v3 priority 150, TTL 255" in peer["found"]
    # it only listened: the master received nothing, the backup's host has no address added
    assert status(master)["counters"].get("adverts_received", 0) == received
    assert not backup.has_vip()


def test_on_the_master_the_silent_backups_are_expected(cluster: Cluster) -> None:
    master, backup = start_master(cluster)
    rc, findings = doctor(cluster, master)
    assert rc == 0, failed(findings)
    assert any("this node is master (the agent says)" in f["found"] for f in findings)


def test_a_firewall_dropping_vrrp_and_the_silence_it_causes(cluster: Cluster) -> None:
    master, backup = start_master(cluster)
    ns = ["ip", "netns", "exec", backup.node.name, "nft"]
    for rule in (["add", "table", "inet", "hostfw"],
                 ["add", "chain", "inet", "hostfw", "input", "{ type filter hook input priority 0; }"],
                 ["add", "rule", "inet", "hostfw", "input", "ip", "protocol", "vrrp", "drop"]):
        subprocess.run([*ns, *rule], check=True)
    rc, findings = doctor(cluster, backup)
    assert rc == 1
    checks = dict(failed(findings))
    assert f"adverts from {master.node.ip}: DROPPED by nftables table inet hostfw chain input" \
        in checks["firewall in"]
    assert "no advert from" in checks["peer"]
    fix = next(f["fix"] for f in findings if f["check"] == "firewall in")
    assert fix == f"nft insert rule inet hostfw input ip saddr {master.node.ip} meta l4proto vrrp accept"
    subprocess.run([*ns, *fix.split()[1:]], check=True)  # the fix, as printed, works
    rc, findings = doctor(cluster, backup)
    assert rc == 0, failed(findings)


def test_a_silent_peer_and_a_missing_interface(cluster: Cluster) -> None:
    lone = cluster.daemon(1, "cloudvip", priority=100, **ADVERT)
    rc, findings = doctor(cluster, lone)
    assert rc == 1 and [c for c, _ in failed(findings)] == ["peer"]
    lone.conf.write_text(lone.conf.read_text().replace("interface eth0", "interface eth7"))
    rc, findings = doctor(cluster, lone)
    assert rc == 1 and failed(findings)[0] == ("interface", "eth7 does not exist on this host")
    assert [c for c, _ in failed(findings)] == ["interface", "linux start"]  # said once more, not as a bug


def test_a_vip_carried_while_another_node_is_master(cluster: Cluster) -> None:
    master, backup = start_master(cluster)
    subprocess.run(cluster.topo.exec_args(backup.node, "ip", "addr", "add", f"{VIP}/24", "dev", "eth0"), check=True)
    time.sleep(0.1)
    rc, findings = doctor(cluster, backup)
    assert rc == 1
    vip = dict(failed(findings))["vip"]
    assert f"this host carries the VIP while {master.node.ip} is master" in vip
