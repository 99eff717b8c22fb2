#!/usr/bin/env python3
"""Failover time, idle CPU and memory: keepalived vs cloudvip, in the same namespaces, same run.

For each pair kind (keepalived-keepalived, cloudvip-cloudvip), each wire setting (v2
advert_int 1, v3 advert_int 0.1) and each signal (SIGKILL, SIGTERM), `--runs` times:
the master (priority 100) is signalled, and a probe in the backup's namespace (priority
90) timestamps the master's adverts and the VIP's arrival with CLOCK_MONOTONIC.
SIGKILL is measured from the master's last advert (what the RFC timer counts from) and
SIGTERM from the signal. Then idle CPU (% of one core) and RSS with 1 and 100 instances.

    python bench/failover.py [--runs 20] [--idle-seconds 30] [--only-idle | --no-idle]
Needs root (namespaces) and keepalived.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudvip_lab.daemons import VIP, Daemon, instance_block, vrrp_conf  # noqa: E402
from cloudvip_lab.probe import Probe  # noqa: E402

from common import cpu_ticks, rss_kb, stats  # noqa: E402
from cloudvip_lab.topology import Node, Topology  # noqa: E402
from cloudvip.state_machine import master_down_interval, skew_time  # noqa: E402

WIRES = {"v2 advert_int 1": dict(version=2, advert=1.0), "v3 advert_int 0.1": dict(version=3, advert=0.1)}
KINDS = ("keepalived", "cloudvip")


def stable_master(topo: Topology, master: Daemon, backup: Daemon, timeout: float) -> None:
    if topo.wait_for(lambda: master.has_vip() and not backup.has_vip(), timeout, 0.01) is None:
        raise RuntimeError(f"{master.kind}: no stable master\n{master.log[-2000:]}\n{backup.log[-2000:]}")


def failover_runs(topo: Topology, work: Path, kind: str, wire: dict, sig: str, runs: int) -> list[float]:
    n1, n2 = topo.nodes
    master = Daemon(topo, n1, kind, vrrp_conf(n1, [n2], priority=100, **wire), work, log_level="info")
    backup = Daemon(topo, n2, kind, vrrp_conf(n2, [n1], priority=90, **wire), work, log_level="info")
    probe = Probe(topo, n2)
    advert = wire["advert"]
    mdi = master_down_interval(wire["version"], 100, round(advert * 100))
    times: list[float] = []
    try:
        backup.start()
        master.start()
        for run in range(runs):
            stable_master(topo, master, backup, mdi + 10)
            time.sleep(advert + random.uniform(0, advert))  # kill at a random phase of the advert cycle
            t_sig = time.monotonic()
            if sig == "SIGKILL":
                master.kill()
            else:
                master.term()
            arrived = probe.wait(lambda e: e["ev"] == "addr_add" and e["addr"] == VIP, t_sig, mdi + 10)
            if arrived is None:
                raise RuntimeError(f"{kind}: VIP never reached the backup\n{backup.log[-2000:]}")
            if sig == "SIGKILL":
                # the kill lands a few ms after t_sig: the last advert is the last one before the VIP moved
                last = probe.last(lambda e: e["ev"] == "advert" and e["src"] == str(n1.ip) and e["prio"] > 0,
                                  arrived["t"])
                assert last is not None
                times.append(arrived["t"] - last["t"])
            else:
                times.append(arrived["t"] - t_sig)
            master.drop_vip()
            if run < runs - 1:
                master.start()  # it comes back and preempts: ready for the next run
    finally:
        master.kill()
        backup.kill()
        probe.close()
        master.drop_vip()
        backup.drop_vip()
    return times


def idle(topo: Topology, work: Path, kind: str, count: int, seconds: float) -> dict[str, tuple[float, float]]:
    n1, n2 = topo.nodes

    def conf(node: Node, peer: Node, prio: int) -> str:
        blocks = [instance_block(node, [peer], name=f"VI_{i}", vrid=i, priority=prio, vip=f"198.18.0.{i}/32")
                  for i in range(1, count + 1)]
        return f"global_defs {{\n    router_id {node.name}\n}}\n\n" + "\n".join(blocks)

    master = Daemon(topo, n1, kind, conf(n1, n2, 100), work / f"idle{count}", log_level="warning")
    backup = Daemon(topo, n2, kind, conf(n2, n1, 90), work / f"idle{count}", log_level="warning")
    out: dict[str, tuple[float, float]] = {}
    try:
        backup.start()
        master.start()
        last_vip = f"198.18.0.{count}"
        if topo.wait_for(lambda: master.has_vip(last_vip) and master.has_vip("198.18.0.1"), 30, 0.05) is None:
            raise RuntimeError(f"{kind} x{count}: master never took all VIPs\n{master.log[-3000:]}")
        time.sleep(6)  # past the second gratuitous ARP burst (garp_master_delay 5 s)
        hz = os.sysconf("SC_CLK_TCK")
        start = {role: cpu_ticks(d.pids()) for role, d in (("master", master), ("backup", backup))}
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        for role, d in (("master", master), ("backup", backup)):
            pids = d.pids()
            cpu = (cpu_ticks(pids) - start[role]) / hz / elapsed * 100
            out[role] = (cpu, rss_kb(pids) / 1024)
    finally:
        master.kill()
        backup.kill()
        for i in range(1, count + 1):
            for d in (master, backup):
                d.drop_vip(f"198.18.0.{i}/32")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--no-idle", action="store_true")
    ap.add_argument("--only-idle", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/failover.py needs root (network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up namespaces on kill
    version = subprocess.run(["keepalived", "--version"], capture_output=True, text=True)
    print(f"keepalived: {(version.stdout + version.stderr).splitlines()[0]}; cloudvip: {sys.executable}")
    with tempfile.TemporaryDirectory(prefix="cloudvip-bench-") as tmp, Topology("cvbench", 2) as topo:
        work = Path(tmp)
        if not args.only_idle:
            print(f"\nfailover, {args.runs} runs per case; SIGKILL from the master's last advert, "
                  "SIGTERM from the signal (ms)")
            print(f"{'case':<34}{'RFC':>8}{'min':>9}{'median':>9}{'p95':>9}")
            for wire_name, wire in WIRES.items():
                cs = round(wire["advert"] * 100)
                for sig in ("SIGKILL", "SIGTERM"):
                    rfc = (master_down_interval(wire["version"], 90, cs) if sig == "SIGKILL"
                           else skew_time(wire["version"], 90, cs)) * 1000
                    medians = {}
                    for kind in KINDS:
                        lo, med, p95 = stats(failover_runs(topo, work, kind, wire, sig, args.runs))
                        medians[kind] = med
                        print(f"{kind + ' ' + sig + ', ' + wire_name:<34}{rfc:8.1f}{lo:9.1f}{med:9.1f}{p95:9.1f}",
                              flush=True)
                    print(f"{'  ratio cloudvip/keepalived (median)':<34}{'':8}{'':9}"
                          f"{medians['cloudvip'] / medians['keepalived']:9.4f}", flush=True)
        if not args.no_idle:
            print(f"\nidle, advert_int 1, over {args.idle_seconds:g} s: CPU % of one core, RSS MB (all processes)")
            print(f"{'daemon':<28}{'master CPU':>11}{'master RSS':>11}{'backup CPU':>11}{'backup RSS':>11}")
            for count in (1, 100):
                for kind in KINDS:
                    r = idle(topo, work, kind, count, args.idle_seconds)
                    print(f"{kind + f' x{count} instances':<28}{r['master'][0]:11.3f}{r['master'][1]:11.1f}"
                          f"{r['backup'][0]:11.3f}{r['backup'][1]:11.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
