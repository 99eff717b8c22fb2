#!/usr/bin/env python3
"""Health-check figures, in namespaces with the real HAProxy, same run:

1. failover on HAProxy failure: the master's HAProxy is stopped; time until the VIP is on the
   backup. cloudvip with the native check, cloudvip with the tutorial's
   `killall -0 haproxy` script, keepalived with the same script (VRRPv3 0.1 s, checks every
   0.2 s, fall 1, weight -50).
2. CPU cost of 100 checks per second (100 vrrp_scripts at interval 1) for 30 s: cloudvip native,
   cloudvip script, keepalived script; % of one core, children (the scripts) included.

    python bench/health.py [--runs 20] [--seconds 30]
Needs root, haproxy and keepalived.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_ticks, stats

from cloudvip_lab.daemons import Daemon, instance_block
from cloudvip_lab.haproxy import Haproxy
from cloudvip_lab.topology import Node, Topology

CASES = [("cloudvip", "native"), ("cloudvip", "script"), ("keepalived", "script")]
FAST = dict(version=3, advert=0.1)


def check_body(kind: str, sock: Path) -> str:
    if kind == "native":
        return f"haproxy_socket {sock}\n    haproxy_frontend fe_web"
    return 'script "/usr/bin/killall -0 haproxy"'


def conf(node: Node, peer: Node, priority: int, checks: list[str], interval: float) -> str:
    scripts = "".join(f"vrrp_script chk{i} {{\n    {body}\n    interval {interval:g}\n    weight -50\n"
                      f"    fall 1\n    rise 1\n}}\n\n" for i, body in enumerate(checks))
    track = "    track_script {\n" + "".join(f"        chk{i}\n" for i in range(len(checks))) + "    }\n" \
        if checks else ""
    return (f"global_defs {{\n    router_id {node.name}\n    script_user root\n}}\n\n" + scripts
            + instance_block(node, [peer], priority=priority, extra=track, **FAST))  # type: ignore[arg-type]


def failover(topo: Topology, work: Path, daemon_kind: str, check: str, runs: int) -> list[float]:
    n1, n2 = topo.nodes
    hap = Haproxy(topo, n1, work)
    hap.start()
    a = Daemon(topo, n1, daemon_kind, conf(n1, n2, 100, [check_body(check, hap.sock)], 0.2), work, "info")
    b = Daemon(topo, n2, daemon_kind, conf(n2, n1, 90, [], 0.2), work, "info")
    times: list[float] = []
    try:
        a.start()
        b.start()
        for _ in range(runs):
            if topo.wait_for(lambda: a.has_vip() and not b.has_vip(), 10, 0.005) is None:
                raise RuntimeError(f"no stable master\n{a.log[-2000:]}")
            time.sleep(0.5)
            stopped = time.monotonic()
            hap.stop()
            moved = topo.wait_for(lambda: b.has_vip(), 10, 0.002)
            if moved is None:
                raise RuntimeError(f"VIP did not move\n{a.log[-2000:]}")
            times.append(moved - stopped)
            hap.start()  # the master's priority comes back and it preempts
    finally:
        hap.stop()
        a.kill()
        b.kill()
        a.drop_vip()
        b.drop_vip()
    return times


def cpu_cost(topo: Topology, work: Path, daemon_kind: str, check: str, seconds: float) -> float:
    n1, n2 = topo.nodes
    hap = Haproxy(topo, n1, work)
    hap.start()
    d = Daemon(topo, n1, daemon_kind, conf(n1, n2, 100, [check_body(check, hap.sock)] * 100, 1.0), work,
               "warning")
    try:
        d.start()
        time.sleep(3)
        hz = os.sysconf("SC_CLK_TCK")
        before = cpu_ticks(d.pids(), children=True)
        t0 = time.monotonic()
        time.sleep(seconds)
        used = cpu_ticks(d.pids(), children=True) - before
        return used / hz / (time.monotonic() - t0) * 100
    finally:
        d.kill()
        d.drop_vip()
        hap.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/health.py needs root (network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="cloudvip-bench-") as tmp, Topology("cvbench", 2) as topo:
        work = Path(tmp)
        print(f"failover after stopping the master's HAProxy, {args.runs} runs (ms); checks every 0.2 s, "
              "fall 1, VRRPv3 advert_int 0.1")
        print(f"{'case':<32}{'min':>9}{'median':>9}{'p95':>9}")
        for kind, check in CASES:
            lo, med, p95 = stats(failover(topo, work, kind, check, args.runs))
            print(f"{kind + ' ' + check:<32}{lo:9.1f}{med:9.1f}{p95:9.1f}", flush=True)
        print(f"\nCPU of 100 checks per second over {args.seconds:g} s (% of one core, scripts included)")
        for kind, check in CASES:
            print(f"{kind + ' ' + check:<32}{cpu_cost(topo, work, kind, check, args.seconds):9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
