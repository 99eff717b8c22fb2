#!/usr/bin/env python3
"""Soak: a bounded randomized run of faults from the fault matrix against agents in lab
namespaces on an emulated cloud API, checking after each one that exactly one node owns the
VIP in the cloud, its host carries the address and no other live host does (held 1.5 s).

Each fault is drawn (with its parameters) from a seeded random generator: the seed is printed
first, and `--seed N` replays the same sequence. Printed per fault: settle time and API writes;
at the end, per fault kind, and each agent's asyncio tasks, open fds, threads and RSS at the
start, after the warm-up and at the end (from `cloudvip status`), to show no growth.

    python bench/soak.py [--cloud aws|hetzner] [--faults 200] [--seed N] [--nodes 3]
Needs root; aws: boto3 + moto (dev extra); hetzner: hcloud.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudvip_lab.cloud_demo import Aws, EmulatedCloud, Hetzner  # noqa: E402
from cloudvip_lab.daemons import VIP, Daemon, instance_block  # noqa: E402
from cloudvip_lab.faults import (NoSingleOwner, freeze, settle, sole_owner, vrrp_delay, vrrp_loss,  # noqa: E402
                                 vrrp_partition)
from cloudvip_lab.topology import Topology  # noqa: E402

KINDS = ("SIGKILL", "SIGTERM", "link down", "freeze", "freeze a node", "loss", "delay", "partition", "reload",
         "reload during failover", "API 5xx", "API throttling", "API slow", "API unreachable",
         "removed behind the back", "restart while a move is in flight")
WARMUP = 20  # faults before the "after warm-up" reading: first calls load SDK modules, fill caches


class Soak:
    def __init__(self, cloud: EmulatedCloud, nodes: int, workdir: Path, rng: random.Random) -> None:
        self.cloud, self.rng, self.workdir = cloud, rng, workdir
        self.topo = Topology("cvk", nodes).create()
        self.agents: list[Daemon] = []
        self.restarts: dict[int, int] = defaultdict(int)

    def open(self) -> None:
        self.cloud.open(self.topo, self.workdir)
        prefix = 24 if self.cloud.vip == VIP else 32
        for i, node in enumerate(self.topo.nodes):
            peers = [n for n in self.topo.nodes if n is not node]
            conf = f"global_defs {{\n    router_id node{i + 1}\n}}\n\n" + instance_block(
                node, peers, priority=100 - 10 * i, version=3, advert=0.1, vip=f"{self.cloud.vip}/{prefix}",
                extra=self.cloud.cloud_block(i))
            self.agents.append(Daemon(self.topo, node, "cloudvip", conf, self.workdir, log_level="info").start())

    def close(self) -> None:
        for d in self.agents:
            if d.alive:
                d.kill()
        self.cloud.close()
        self.topo.destroy()

    def owner(self) -> int | None:
        return sole_owner(self.cloud.owner(), self.agents, self.cloud.vip)

    def process(self, i: int) -> dict[str, Any]:
        proc: dict[str, Any] = self.agents[i].status()["process"]
        return proc

    # ---------- the faults: each returns a description; agents it kills it restarts ----------
    def restart(self, i: int) -> None:
        if not self.agents[i].alive:
            self.agents[i].start()
            self.restarts[i] += 1

    def kill_master(self, m: int, how: str = "SIGKILL") -> None:
        self.agents[m].kill() if how == "SIGKILL" else self.agents[m].term()
        time.sleep(self.rng.uniform(0.5, 3))
        self.restart(m)

    def draw(self, m: int) -> tuple[str, str, Callable[[], object]]:
        """A random fault of the matrix, aimed at the master `m` (or a node, the network, the
        API): its kind, its description with the drawn parameters, and the fault itself."""
        rng, topo, cloud = self.rng, self.topo, self.cloud
        nxt = (m + 1) % len(self.agents)
        secs = round(rng.uniform(1, 5), 1)
        other = rng.randrange(len(self.agents))
        kind = rng.choice(KINDS)
        if kind in ("SIGKILL", "SIGTERM"):
            return kind, f"{kind} master", lambda: self.kill_master(m, kind)
        if kind == "link down":
            def link() -> None:
                topo.set_link(topo.nodes[m], False)
                time.sleep(secs)
                topo.set_link(topo.nodes[m], True)
            return kind, f"master link down {secs} s", link
        if kind == "freeze":
            return kind, f"master frozen {secs} s", lambda: freeze(self.agents[m], secs)
        if kind == "freeze a node":
            return kind, f"node{other + 1} frozen {secs} s", lambda: freeze(self.agents[other], secs)
        if kind == "loss":
            pct = rng.choice([10, 20, 30, 50])
            return kind, f"loss {pct}% {secs} s", lambda: vrrp_loss(topo, pct, secs)
        if kind == "delay":
            ms = rng.choice([20, 50, 100, 300])
            jit = round(ms * rng.uniform(0, 0.8))
            return kind, f"delay {ms} +- {jit} ms {secs} s", lambda: vrrp_delay(topo, ms, jit, secs)
        if kind == "partition":
            return kind, f"VRRP partition {secs} s", lambda: vrrp_partition(topo, secs)
        if kind == "reload":
            return kind, f"reload node{other + 1}", lambda: self.agents[other].signal(signal.SIGHUP)
        if kind == "reload during failover":
            return kind, kind, lambda: (self.agents[m].kill(), self.agents[nxt].signal(signal.SIGHUP),
                                        time.sleep(1), self.restart(m))
        if kind in ("API 5xx", "API throttling"):
            n = rng.randint(1, 3)
            error = "5xx" if kind == "API 5xx" else "throttle"
            return kind, f"{kind} x{n} + SIGKILL", lambda: (cloud.fail_writes(error, n), self.kill_master(m))
        if kind == "API slow":
            slow = secs / 2
            return kind, f"API slow {slow:.1f} s + SIGKILL", lambda: (cloud.slow_writes(slow), self.kill_master(m))
        if kind == "API unreachable":
            def unreachable() -> None:
                cloud.forwarder(nxt).pause()
                self.agents[m].kill()
                time.sleep(secs * 2)
                cloud.forwarder(nxt).resume()
                self.restart(m)
            return kind, f"API unreachable from node{nxt + 1} {secs * 2:.0f} s + SIGKILL", unreachable
        if kind == "removed behind the back":
            # the removal itself is not the agents' write: count from after it
            return kind, "VIP removed in the cloud", lambda: (cloud.remove_behind_the_back(m), cloud.reset_writes())

        def in_flight() -> None:
            cloud.slow_writes(1.5)
            self.agents[m].kill()
            time.sleep(0.8)  # the next in line is claiming, slowly
            self.agents[nxt].kill()
            self.restart(nxt)
            self.restart(m)
        return kind, kind, in_flight

    def heal(self) -> None:
        """Whatever a fault left behind, gone (it normally cleans up itself)."""
        self.cloud.slow_writes(0)
        self.cloud.fail_writes("5xx", 0)
        for i, n in enumerate(self.topo.nodes):
            self.topo.set_link(n, True)
            self.restart(i)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cloud", choices=("aws", "hetzner"), default="aws")
    p.add_argument("--faults", type=int, default=200)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--nodes", type=int, default=3)
    a = p.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"soak: seed {seed} (replay: bench/soak.py --cloud {a.cloud} --nodes {a.nodes} --faults {a.faults} "
          f"--seed {seed})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the namespaces on kill too
    rng = random.Random(seed)
    cloud: EmulatedCloud = Aws("secondary_ip") if a.cloud == "aws" else Hetzner("floating_ip")
    cloud.reconcile = 1.0 if a.cloud == "aws" else 5.0
    with tempfile.TemporaryDirectory(prefix="cloudvip-soak-") as tmp:
        soak = Soak(cloud, a.nodes, Path(tmp), rng)
        try:
            soak.open()
            first, _ = settle(soak.owner, soak.agents, time.monotonic())
            readings = {"start": {i: soak.process(i) for i in range(a.nodes)}}
            per_kind: dict[str, list[tuple[float, int]]] = defaultdict(list)
            t0 = time.monotonic()
            for k in range(1, a.faults + 1):
                m = soak.owner()
                m = first if m is None else m
                kind, label, fault = soak.draw(m)
                cloud.reset_writes()
                fault()
                soak.heal()
                ended = time.monotonic()
                try:
                    who, secs = settle(soak.owner, soak.agents, ended)
                except NoSingleOwner as exc:
                    print(f"#{k} {label}: INVARIANT BROKEN (seed {seed})\n{exc}", flush=True)
                    return 1
                spent = sum(cloud.writes().values())
                per_kind[kind].append((secs, spent))
                print(f"#{k} {label}: settled {secs:.2f} s on node{who + 1}, API writes {spent}", flush=True)
                if k == WARMUP:
                    readings["after warm-up"] = {i: soak.process(i) for i in range(a.nodes)}
            readings["end"] = {i: soak.process(i) for i in range(a.nodes)}
            report(per_kind, readings, soak.restarts, time.monotonic() - t0, seed)
        finally:
            soak.close()
    return 0


def report(per_kind: dict[str, list[tuple[float, int]]], readings: dict[str, dict[int, dict[str, Any]]],
           restarts: dict[int, int], elapsed: float, seed: int) -> None:
    total = sum(len(v) for v in per_kind.values())
    print(f"\n{total} faults in {elapsed / 60:.1f} min, seed {seed}: the invariant held after every one")
    print(f"{'fault':44} {'n':>3} {'settle median':>14} {'max':>7} {'writes max':>10} {'total':>6}")
    for kind, vals in sorted(per_kind.items()):
        settles = [s for s, _ in vals]
        writes = [w for _, w in vals]
        print(f"{kind:44} {len(vals):>3} {statistics.median(settles):>12.2f} s {max(settles):>5.2f} s "
              f"{max(writes):>10} {sum(writes):>6}")
    print("\nagents (from `cloudvip status`): tasks / fds / threads / RSS KiB")
    for i in sorted(readings["start"]):
        cells = [f"{when}: {r[i]['tasks']} / {r[i]['fds']} / {r[i]['threads']} / {r[i]['rss_kib']}"
                 for when, r in readings.items() if i in r]
        same = readings["start"][i]["pid"] == readings["end"][i]["pid"]
        note = "same process throughout" if same else f"restarted {restarts.get(i, 0)} times (figures per process)"
        print(f"node{i + 1} ({note}): " + "; ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
