"""`cloudvip lab --cloud aws`: the lab's failover, with the VIP moved through an emulated EC2.

Two agents in namespaces, each an emulated EC2 instance (moto's server on 127.0.0.1 with
cloudvip/lab/ec2_emulator.py's corrections; a fake IMDSv2 in each namespace), read a
keepalived.conf with a `cloud aws` block. Shown from EC2's side: election, SIGKILL of the
master, a VIP removed behind the agents' back, preemption, graceful handover; with the
API writes each step cost.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from pathlib import Path

from ..state_machine import master_down_interval, skew_time
from .aws_site import AwsSite
from .daemons import VIP, Daemon, instance_block
from .demo import Lab, run_lab
from .ec2_emulator import Ec2Server, Ec2World, build_world, reset_observations, writes

RECONCILE = 2.0


class AwsLab(Lab):
    echo = Lab.echo + ("now points to", "re-asserting", "split brain", "handed the VIP")

    def __init__(self, workdir: Path, mode: str) -> None:
        super().__init__(2, workdir, None, priorities={0: 100, 1: 90})
        self.mode = mode
        self.vip = AwsSite.vip_for(mode, VIP)
        self.server: Ec2Server | None = None
        self.site: AwsSite | None = None
        self.world: Ec2World | None = None

    def in_cloud(self) -> int | None:
        """The node whose ENI the cloud sends the VIP to."""
        assert self.site is not None and self.world is not None
        enis = self.site.holder_eni(self.mode, self.vip)
        return self.world.enis.index(enis[0]) if len(enis) == 1 and enis[0] in self.world.enis else None

    def holder(self) -> int | None:
        """The live node owning the VIP in EC2, and (except elastic_ip) alone carrying it on its host."""
        owner = self.in_cloud()
        if owner is None or not self.agents[owner].alive:
            return None
        if self.mode != "elastic_ip":
            carrying = [i for i, a in enumerate(self.agents) if a.alive and a.has_vip(self.vip)]
            if carrying != [owner]:
                return None
        return owner

    def ec2_view(self) -> str:
        assert self.world is not None
        i = self.in_cloud()
        where = {"secondary_ip": f"secondary private IP {self.vip} on", "elastic_ip": "Elastic IP associated with",
                 "route_table": f"route {self.vip}/32 in {self.world.route_table} ->"}[self.mode]
        node = f"node{i + 1}'s {self.world.enis[i]} ({self.world.instances[i]})" if i is not None else "nobody"
        return f"EC2: {where} {node}; API writes: {self.writes_text()}"

    def writes_text(self) -> str:
        assert self.world is not None
        counted = writes()
        return ", ".join(f"node{self.world.enis.index(e) + 1} {n}" for e, n in sorted(counted.items())
                         if e in self.world.enis) or "none"

    def config(self, i: int) -> str:
        assert self.site is not None
        node = self.topo.nodes[i]
        peers = [n for n in self.topo.nodes if n is not node]
        prefix = 24 if self.vip == VIP else 32
        return f"global_defs {{\n    router_id node{i + 1}\n}}\n\n" + instance_block(
            node, peers, priority=self.priorities[i], version=2, advert=1, vip=f"{self.vip}/{prefix}",
            extra=self.site.cloud_block(self.mode, f"        reconcile_interval {RECONCILE:g}\n"))

    def run(self) -> int:
        print("cloudvip lab --cloud aws: starting the EC2 emulator (moto, corrected) on 127.0.0.1")
        self.server = Ec2Server()
        self.world = build_world(self.server)
        self.topo.create()
        self.site = AwsSite(self.topo, self.world, self.server.port)
        self.agents = [Daemon(self.topo, node, "cloudvip", self.config(i), self.workdir, log_level="info")
                       for i, node in enumerate(self.topo.nodes)]
        for i, node in enumerate(self.topo.nodes):
            print(f"  node{i + 1} {node.ip} priority {self.priorities[i]}: instance {self.world.instances[i]}, "
                  f"ENI {self.world.enis[i]} (found by the agent through IMDSv2)")
        print(f"  mode {self.mode}, VIP {self.vip}; node1's config ({self.agents[0].conf}):\n")
        print("    " + self.config(0).replace("\n", "\n    "))
        for i in range(2):
            self.start(i)
        self.say("started 2 agents")
        if self.wait_holder(0, 10) is None:
            self.say(f"node1 did not get the VIP in EC2 within 10 s: FAILED; {self.ec2_view()}")
            self.agent_lines()
            return 1
        self.agent_lines()
        self.say(f"election: {self.ec2_view()}")

        time.sleep(1.5)
        reset_observations()
        self.say("node1 (the master) dies: SIGKILL of its agent and its link down")
        killed = time.monotonic()
        self.stop(0, signal.SIGKILL)
        self.topo.set_link(self.topo.nodes[0], False)
        moved = self.wait_holder(1, master_down_interval(2, 90, 100) + 5)
        self.agent_lines()
        if moved is None:
            self.say(f"EC2 did not follow: failover FAILED; {self.ec2_view()}")
            return 1
        self.say(f"failover: {moved - killed:.3f} s after the kill (Master_Down_Interval "
                 f"{master_down_interval(2, 90, 100):.3f} s after node1's last advert); {self.ec2_view()}")

        self.say("someone removes the VIP in EC2 behind the agents' back")
        self.site.remove_in_cloud(self.mode, self.vip, self.world.enis[1])
        removed = time.monotonic()
        reset_observations()  # the agents' writes only
        back = self.wait_holder(1, RECONCILE + 5)
        self.agent_lines()
        if back is None:
            self.say(f"not reclaimed: reconciliation FAILED; {self.ec2_view()}")
            return 1
        self.say(f"reconciliation (every {RECONCILE:g} s) re-asserted it {back - removed:.3f} s later; "
                 f"{self.ec2_view()}")

        reset_observations()
        self.say("restarting node1: it comes back as BACKUP and preempts")
        self.agents[0].drop_vip(f"{self.vip}/{24 if self.vip == VIP else 32}")
        self.topo.set_link(self.topo.nodes[0], True)
        self.start(0)
        if self.wait_holder(0, master_down_interval(2, 100, 100) + 5) is None:
            self.agent_lines()
            self.say(f"preemption FAILED; {self.ec2_view()}")
            return 1
        self.agent_lines()
        self.say(f"preemption: {self.ec2_view()}")

        time.sleep(1.5)
        reset_observations()
        self.say("SIGTERM node1: it sends priority 0, so node2 waits only Skew_Time")
        termed = time.monotonic()
        self.stop(0, signal.SIGTERM)
        moved = self.wait_holder(1, 5)
        self.agent_lines()
        if moved is None:
            self.say(f"graceful handover FAILED; {self.ec2_view()}")
            return 1
        self.say(f"handover: {moved - termed:.3f} s after SIGTERM (Skew_Time {skew_time(2, 90, 100):.3f} s); "
                 f"{self.ec2_view()}")
        print("\nlab OK: EC2 followed the election, the failover, a change behind our back, preemption and "
              "the graceful handover")
        return 0

    def cleanup(self) -> None:
        if self.site is not None:
            self.site.close()
        super().cleanup()
        if self.server is not None:
            self.server.stop()


def main(args: argparse.Namespace) -> int:
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError:
        print("cloudvip lab --cloud aws needs boto3 and moto: pip install 'cloudvip[aws,lab]'")
        return 2
    with tempfile.TemporaryDirectory(prefix="cloudvip-lab-") as tmp:
        return run_lab(AwsLab(Path(tmp), args.mode))
