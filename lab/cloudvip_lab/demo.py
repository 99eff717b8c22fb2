"""`cloudvip lab`: a real failover between cloudvip agents, on this machine, in namespaces.

Builds a bridge with 2-3 nodes and a client, runs one agent per node from the
bundled keepalived.conf (`lab.conf` beside it, per-node lines picked with -i),
then: election, SIGKILL of the master, preemption by the returning node, and a
graceful SIGTERM handover. Everything is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from importlib.resources import as_file, files
from pathlib import Path

from cloudvip.config import load
from cloudvip.state_machine import master_down_interval, skew_time
from .daemons import Daemon
from .topology import Node, Topology

VIP = "198.51.100.100"


class Lab:
    #: agent log lines worth echoing
    echo: tuple[str, ...] = (" -> ", "ERROR", "Traceback")

    def __init__(self, nodes: int, workdir: Path, conf: Path | None,
                 priorities: dict[int, int] | None = None) -> None:
        self.topo = Topology("cvlab", nodes)
        self.workdir, self.conf = workdir, conf
        self.agents: list[Daemon] = []
        self.log_pos: dict[int, int] = {}
        self.t0 = time.monotonic()
        self.client: Node | None = None
        if priorities is None:
            assert conf is not None
            priorities = {i: load(conf, config_id=f"node{i + 1}").instances[0].priority for i in range(nodes)}
        self.priorities = priorities

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.2f}s] {text}", flush=True)

    def start(self, i: int) -> None:
        self.agents[i].start()

    def stop(self, i: int, sig: signal.Signals) -> None:
        if sig == signal.SIGKILL:
            self.agents[i].kill()
        else:
            self.agents[i].term(10)

    def agent_lines(self) -> None:
        """Echo the agents' state-change log lines since the last call."""
        for i in sorted(self.priorities):
            path = self.agents[i].log_path
            if not path.exists():
                continue
            with open(path, encoding="utf-8", errors="replace") as fh:
                fh.seek(self.log_pos.get(i, 0))
                for line in fh:
                    if any(mark in line for mark in self.echo):
                        print(f"           node{i + 1}| {line.rstrip()}")
                self.log_pos[i] = fh.tell()

    def holder(self) -> int | None:
        """The live node holding the VIP (a SIGKILLed agent leaves its address behind, as keepalived does)."""
        live = [i for i, a in enumerate(self.agents) if a.alive and a.has_vip()]
        return live[0] if len(live) == 1 else None

    def wait_holder(self, want: int | None, timeout: float) -> float | None:
        return self.topo.wait_for(lambda: self.holder() == want if want is not None else self.holder() is not None,
                                  timeout)

    def client_view(self) -> str:
        assert self.client is not None
        time.sleep(0.2)  # the new holder announces right after adding the address
        ok = subprocess.run(self.topo.exec_args(self.client, "ping", "-c", "3", "-i", "0.2", "-w", "2", VIP),
                            capture_output=True).returncode == 0
        mac = self.topo.neighbour_mac(self.client, VIP)
        owner = next((f"node{n.index + 1}" for n in self.topo.nodes if self.topo.mac(n) == mac), mac)
        return f"client 198.51.100.50: ping {VIP} {'ok' if ok else 'FAILED'}, its ARP entry points at {owner}"

    def run(self) -> int:
        n = len(self.priorities)
        self.topo.create()
        self.client = self.topo.add_host("c", 50)
        assert self.conf is not None
        self.agents = [Daemon(self.topo, node, "cloudvip", self.conf, self.workdir, log_level="info",
                              config_id=f"node{i + 1}") for i, node in enumerate(self.topo.nodes)]
        desc = ", ".join(f"node{i + 1} {self.topo.nodes[i].ip} priority {p}" for i, p in self.priorities.items())
        print(f"cloudvip lab: {n} agents on a bridge in namespaces {self.topo.tag}*, VIP {VIP}\n  {desc}\n"
              f"  config: {self.conf} (VRRPv2, advert_int 1, PASS auth, unicast peers)\n")
        for i in range(n):
            self.start(i)
        self.say(f"started {n} agents; every node starts in BACKUP and waits its Master_Down_Interval")
        # staggered starts may make two nodes master for a moment: the election is over when the
        # highest priority (which preempts) alone holds the VIP
        first = max(range(n), key=lambda i: self.priorities[i])
        if self.wait_holder(first, 10) is None:
            self.say(f"node{first + 1} did not hold the VIP alone within 10 s: election FAILED")
            self.agent_lines()
            return 1
        self.agent_lines()
        self.say(f"election: node{first + 1} holds {VIP}; {self.client_view()}")

        second = max((i for i in range(n) if i != first), key=lambda i: self.priorities[i])
        mdi = master_down_interval(2, self.priorities[second], 100)
        time.sleep(1.5)
        self.say(f"node{first + 1} (the master) dies: SIGKILL of its agent and its link down")
        killed = time.monotonic()
        self.stop(first, signal.SIGKILL)
        self.topo.set_link(self.topo.nodes[first], False)
        moved = self.wait_holder(second, mdi + 3)
        self.agent_lines()
        if moved is None:
            self.say("the VIP did not move: failover FAILED")
            return 1
        self.say(f"failover: node{second + 1} holds the VIP {moved - killed:.3f} s after the kill "
                 f"(RFC Master_Down_Interval at priority {self.priorities[second]}: {mdi:.3f} s after the "
                 f"master's last advert)")
        self.say(self.client_view())

        self.say(f"restarting node{first + 1}: it comes back as BACKUP and preempts after its own down timer")
        self.agents[first].drop_vip()  # a rebooted machine comes back without the address
        self.topo.set_link(self.topo.nodes[first], True)
        self.start(first)
        back = self.wait_holder(first, master_down_interval(2, self.priorities[first], 100) + 3)
        self.agent_lines()
        if back is None:
            self.say("the old master did not take the VIP back: preemption FAILED")
            return 1
        self.say(f"preemption: node{first + 1} holds the VIP again; {self.client_view()}")

        time.sleep(1.5)
        self.say(f"SIGTERM node{first + 1}: it sends priority 0, so node{second + 1} waits only Skew_Time")
        termed = time.monotonic()
        self.stop(first, signal.SIGTERM)
        moved = self.wait_holder(second, 5)
        self.agent_lines()
        if moved is None:
            self.say("graceful handover FAILED")
            return 1
        skew = skew_time(2, self.priorities[second], 100)
        self.say(f"handover: node{second + 1} holds the VIP {moved - termed:.3f} s after SIGTERM "
                 f"(Skew_Time {skew:.3f} s); {self.client_view()}")
        print("\nlab OK: election, failover, preemption and graceful handover all seen")
        return 0

    def cleanup(self) -> None:
        for agent in self.agents:
            if agent.alive:
                agent.kill()
        self.topo.destroy()
        print(f"cleaned up: namespaces {self.topo.tag}* removed")


def run_lab(lab: Lab) -> int:
    """Run, and remove everything afterwards, also on Ctrl-C or SIGTERM."""
    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        return lab.run()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        lab.cleanup()


def main(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("cloudvip lab needs root: it creates network namespaces, veth pairs and a bridge "
              "(run it as root, e.g. `sudo make lab`)", file=sys.stderr)
        return 2
    if getattr(args, "companion", False) and args.cloud is None:
        print("cloudvip lab --companion moves the VIP through a cloud: add --cloud aws (or hetzner)", file=sys.stderr)
        return 2
    if args.cloud is not None:
        from .cloud_demo import main as cloud_main

        return cloud_main(args)
    with tempfile.TemporaryDirectory(prefix="cloudvip-lab-") as tmp, \
            as_file(files("cloudvip_lab").joinpath("lab.conf")) as conf:
        return run_lab(Lab(args.nodes, Path(tmp), Path(conf)))
