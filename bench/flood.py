#!/usr/bin/env python3
"""Hostile flood at a master: do its own adverts stay on time, and does a failover happen?

Two nodes in namespaces (VRRPv3, advert_int 0.1, unicast), the pair being cloudvip or, in the
same run, keepalived (as configured by default, and with `check_unicast_src`, which makes it
drop adverts from non-peers as cloudvip always does). From two attacker namespaces on the same
bridge, paced to the rate asked (default 100,000 packets/s in all): random garbage from one,
valid-looking VRRPv3 adverts (priority 254) from a non-peer from the other. A probe in the
backup's namespace timestamps the master's adverts (CLOCK_MONOTONIC); lateness = gap between
two adverts minus advert_int. Printed per daemon: lateness without and with the flood (median,
p99, max), whether the master lost the VIP, its CPU during the flood, and for cloudvip how much
of the flood its socket read (its counters).

    python bench/flood.py [--rate 100000] [--seconds 10] [--kinds cloudvip,keepalived,...]
Needs root (and keepalived for those kinds).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import cpu_ticks

from cloudvip_lab.daemons import Daemon, instance_block
from cloudvip_lab.probe import Probe
from cloudvip_lab.topology import Node, Topology

ADVERT = 0.1


def lateness_ms(times: list[float]) -> tuple[float, float, float, int]:
    """(median, p99, max) of gap - advert_int in ms, and the number of gaps."""
    late = sorted((b - a - ADVERT) * 1000 for a, b in zip(times, times[1:], strict=False))
    if not late:
        return float("nan"), float("nan"), float("nan"), 0
    return late[len(late) // 2], late[min(len(late) - 1, round(0.99 * (len(late) - 1)))], late[-1], len(late)


def seen_by_agent(d: Daemon) -> int:
    """Packets the agent read from its socket: decoded or not, dropped or accepted."""
    inst = d.status()["instances"][0]
    return int(sum(inst["interface_drops"].values()) + inst["counters"].get("adverts_received", 0))


def flood(topo: Topology, attackers: list[Node], master: Daemon, backup: Daemon, rate: float,
          seconds: float) -> tuple[list[dict[str, Any]], int]:
    """The attackers' results, and how many times (polled every 0.1 s) the master did not
    carry the VIP alone: a failover, or a master that stepped down for the attacker."""
    kinds = ["garbage", "advert"]
    procs = [subprocess.Popen(topo.exec_args(x, sys.executable, "-m", "cloudvip_lab.attacker", str(master.node.ip),
                                             kind, str(seconds), "--src", str(x.ip), "--version", "3",
                                             "--rate", str(rate / len(attackers))),
                              stdout=subprocess.PIPE, text=True)
             for x, kind in zip(attackers, kinds, strict=True)]
    lost = 0
    while any(p.poll() is None for p in procs):
        lost += not (master.has_vip() and not backup.has_vip())
        time.sleep(0.1)
    return [json.loads(p.communicate(timeout=30)[0]) for p in procs], lost


#: what runs the pair: label -> (daemon kind, extra vrrp_instance lines)
KINDS = {"cloudvip": ("cloudvip", ""), "keepalived": ("keepalived", ""),
         "keepalived+check_unicast_src": ("keepalived", "    check_unicast_src\n")}


def run(label: str, rate: float, seconds: float, work: Path) -> str:
    kind, extra = KINDS[label]
    with Topology("cvf", 2) as topo:
        a_node, b_node = topo.nodes
        attackers = [topo.add_host("x1", 66), topo.add_host("x2", 67)]
        a, b = (Daemon(topo, n, kind, instance_block(n, [peer], priority=prio, version=3, advert=ADVERT, extra=extra),
                       work / label, log_level="info").start()
                for n, peer, prio in ((a_node, b_node, 100), (b_node, a_node, 90)))
        probe = Probe(topo, b_node)
        try:
            if topo.wait_for(lambda: a.has_vip() and not b.has_vip(), 15, 0.05) is None:
                return f"{label}: no master elected\n{a.log}{b.log}"
            time.sleep(1)
            t0 = time.monotonic()
            time.sleep(seconds)
            quiet = probe.adverts(str(a_node.ip), t0, t0 + seconds)
            seen0 = seen_by_agent(a) if kind == "cloudvip" else 0
            ticks0, t1 = cpu_ticks(a.pids()), time.monotonic()
            results, lost = flood(topo, attackers, a, b, rate, seconds)
            t2 = time.monotonic()
            cpu = (cpu_ticks(a.pids()) - ticks0) / os.sysconf("SC_CLK_TCK") / (t2 - t1) * 100
            time.sleep(0.5)
            loud = probe.adverts(str(a_node.ip), t1 + 0.2, t2 - 0.2)
            sent = sum(r["sent"] for r in results)
            took = max(r["seconds"] for r in results)
            reached = (f", {(seen_by_agent(a) - seen0) / took:,.0f}/s read by the agent"
                       if kind == "cloudvip" else "")
            q, f = lateness_ms(quiet), lateness_ms(loud)
            return (f"{label}: flood {sent / took:,.0f} packets/s for {took:.1f} s "
                    f"({sum(r['failed'] for r in results)} send errors){reached}; master CPU {cpu:.0f}% of a core\n"
                    f"  adverts late, quiet ({q[3]} gaps): median {q[0]:.2f} ms, p99 {q[1]:.2f} ms, max {q[2]:.2f} ms\n"
                    f"  adverts late, flood ({f[3]} gaps): median {f[0]:.2f} ms, p99 {f[1]:.2f} ms, max {f[2]:.2f} ms\n"
                    f"  master lost the VIP during the flood: {'YES' if lost else 'never'} "
                    f"({lost} of the 0.1 s polls)")
        finally:
            probe.close()
            for d in (a, b):
                if d.alive:
                    d.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100_000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--kinds", default=",".join(KINDS))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the namespaces on kill too
    print(f"flood at the master: {args.rate:,.0f} packets/s offered (garbage + non-peer VRRPv3 adverts), "
          f"{args.seconds:g} s; VRRPv3 advert_int {ADVERT} s\n")
    with tempfile.TemporaryDirectory(prefix="cloudvip-flood-") as tmp:
        for kind in args.kinds.split(","):
            print(run(kind, args.rate, args.seconds, Path(tmp)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
