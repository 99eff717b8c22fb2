"""Hostile input at a master, from a third namespace on the same bridge: adverts from a non-peer,
a spoofed peer source (TTL below 255), a wrong VRID, a wrong password and garbage are dropped and
counted, and a flood of them neither delays the master's adverts much nor causes a failover
(each case prints what it measured)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from cloudvip_lab.daemons import Daemon, instance_block
from cloudvip_lab.probe import Probe
from cloudvip_lab.topology import Node, Topology

from .conftest import needs_root, status

pytestmark = [needs_root]


def attack(topo: Topology, x: Node, target: Node, kind: str, *args: str) -> dict[str, float]:
    done = subprocess.run(topo.exec_args(x, sys.executable, "-m", "cloudvip_lab.attacker", str(target.ip), kind,
                                         *args), capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def test_hostile_adverts_are_dropped_counted_and_do_not_fail_over(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    topo = Topology("cvx", 2).create()
    daemons: list[Daemon] = []
    probe: Probe | None = None
    try:
        a_node, b_node = topo.nodes
        x = topo.add_host("x", 66)
        confs = []
        for node, peer, prio in ((a_node, b_node, 100), (b_node, a_node, 90)):
            block = instance_block(node, [peer], priority=prio, version=2, advert=1)
            # TTL 255 from the peer, as RFC 3768 requires on a link: off-link spoofing fails
            confs.append(block.replace(f"        {peer.ip}\n", f"        {peer.ip} min_ttl 255\n"))
        a = Daemon(topo, a_node, "cloudvip", confs[0], tmp_path).start()
        b = Daemon(topo, b_node, "cloudvip", confs[1], tmp_path).start()
        daemons += [a, b]
        assert topo.wait_for(lambda: a.has_vip() and not b.has_vip(), 10, 0.05), a.log + b.log
        b_ip = str(b_node.ip)
        cases = {  # what each sends -> the counter that must grow at the master
            "non-peer advert": (["--count", "50", "--src", str(x.ip)], "drop_not_a_peer"),
            "spoofed peer, TTL 64": (["--count", "50", "--src", b_ip, "--ttl", "64"], "drop_bad_ttl"),
            "wrong VRID": (["--count", "50", "--src", b_ip, "--vrid", "99"], "wrong_vrid"),
            "wrong password": (["--count", "50", "--src", b_ip, "--password", "guess"], "drop_bad_auth"),
        }
        for case, (args, counter) in cases.items():
            before = status(a)
            attack(topo, x, a_node, "advert", *args)
            time.sleep(0.3)
            after = status(a)
            key = "interface_drops" if counter == "wrong_vrid" else "counters"
            grew = after[key].get(counter, 0) - before[key].get(counter, 0)
            record_property("figure", f"hostile input, {case}: 50 sent, {counter} +{grew}")
            assert grew == 50, (case, after)
        before = status(a)["interface_drops"]
        attack(topo, x, a_node, "garbage", "--count", "200", "--src", b_ip)
        time.sleep(0.3)
        after = status(a)["interface_drops"]
        garbage = sum(after.values()) - sum(before.values())
        record_property("figure", f"hostile input, garbage: 200 sent, {garbage} dropped by the decoder")
        assert garbage == 200

        # a flood of both at once for 4 s: no failover, the master's adverts on time
        probe = Probe(topo, b_node)
        seen_before = status(a)
        start = time.monotonic()
        floods = [subprocess.Popen(topo.exec_args(x, sys.executable, "-m", "cloudvip_lab.attacker", str(a_node.ip),
                                                  kind, "4", "--src", str(x.ip)), stdout=subprocess.PIPE, text=True)
                  for kind in ("garbage", "advert")]
        results = [json.loads(f.communicate(timeout=30)[0]) for f in floods]
        adverts = probe.adverts(str(a_node.ip), start + 0.5, start + 4)
        gaps = [b2 - b1 for b1, b2 in zip(adverts, adverts[1:], strict=False)]
        seconds = max(r["seconds"] for r in results)
        seen_after = status(a)
        seen = sum(seen_after["interface_drops"].values()) - sum(seen_before["interface_drops"].values()) + \
            seen_after["counters"].get("adverts_received", 0) - seen_before["counters"].get("adverts_received", 0)
        rate = sum(r["sent"] for r in results) / seconds
        record_property("figure", f"hostile input, flood: {rate:,.0f} packets/s sent for {seconds:.1f} s, "
                                  f"{seen / seconds:,.0f}/s reached the master's socket; master adverts "
                                  f"{len(adverts)}, interval {min(gaps):.4f}..{max(gaps):.4f} s (advert_int 1)")
        assert a.has_vip() and not b.has_vip()
        assert status(a)["state"] == "MASTER" and status(b)["state"] == "BACKUP"
        assert len(adverts) >= 3 and max(gaps) < 1.5  # never long enough for Master_Down_Interval
    finally:
        if probe is not None:
            probe.close()
        for d in daemons:
            if d.alive:
                d.kill()
        topo.destroy()
