"""`cloudvip lab --cloud aws|hetzner`: the lab's failover, with the VIP moved through an
emulated cloud API on 127.0.0.1 (moto corrected for EC2, cloudvip's own Hetzner Cloud API).

Two agents in namespaces, each an emulated instance/server that discovers itself through a
fake metadata service, read a keepalived.conf with a `cloud` block. Shown from the cloud's side:
election, SIGKILL of the master, the VIP removed behind the agents' back, preemption, graceful
handover; with the API writes each step cost.
"""

from __future__ import annotations

import abc
import argparse
import os
import random
import signal
import tempfile
import time
from pathlib import Path

from cloudvip.state_machine import master_down_interval, skew_time
from typing import TYPE_CHECKING

from .cloud_edge import ApiEdge, LabCa
from .daemons import VIP, Daemon, instance_block
from .demo import Lab, run_lab
from .fabric import Client, Fabric, Route, first_answer, outage_parts
from .profiles import INSTANT, PROFILES, SOURCES, Profile
from .topology import Topology

if TYPE_CHECKING:
    from .arm_emulator import ArmWorld
    from .aws_site import AwsSite
    from .azure_site import AzureSite
    from .gce_emulator import GceWorld
    from .gce_site import GceSite
    from .hcloud_emulator import HetznerWorld
    from .hetzner_site import HetznerSite
    from .netns_services import Forwarder

RECONCILE = 5.0


class EmulatedCloud(abc.ABC):
    """One cloud's emulator, as the lab (and the soak bench) sees it; one instance/server per
    lab node, in node order."""

    vip: str
    mode: str
    on_host = True  # the host carries the VIP too
    reconcile = RECONCILE
    site: AwsSite | HetznerSite | GceSite | AzureSite
    profile: Profile = INSTANT

    @property
    def kind(self) -> str:
        """The mode as the profile names it (unique across clouds)."""
        return self.mode

    @property
    def propagation(self) -> float:
        """Seconds the data plane takes to follow the cloud, under the profile."""
        return self.profile.propagation_for(self.kind)

    @property
    def move_seconds(self) -> float:
        """Seconds the cloud itself runs a move (actions, operations) under the profile."""
        return 0.0

    def edge(self, emulator_port: int, workdir: Path) -> ApiEdge:
        """The API as the nodes reach it under the profile (TLS with a lab CA, a round trip)."""
        ca = LabCa(workdir / "lab-ca") if self.profile.tls else None
        return ApiEdge(emulator_port, self.profile.rtt, ca, self.profile.idle_close)

    def env(self) -> dict[str, str]:
        """What an agent's (or a script's) SDK needs in its environment to reach the API."""
        return self.site.edge.env()

    def follow(self, fabric: Fabric) -> None:
        """What a node reads locally about the cloud (AWS's IMDS) follows this data plane."""

    @abc.abstractmethod
    def route(self) -> Route:
        """Where the cloud's state sends the VIP (read in-process: no API request)."""

    def owner(self) -> int | None:
        """The node the cloud sends the VIP to."""
        return self.route().node

    @abc.abstractmethod
    def open(self, topo: Topology, workdir: Path) -> list[str]:
        """Start the emulator and the per-namespace services; lines describing the nodes."""

    def cloud_block(self, i: int) -> str:
        """Node i's cloud block (the identity comes from the cloud's metadata service)."""
        return self.site.cloud_block(self.mode, f"        reconcile_interval {self.reconcile:g}\n")

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the cloud sends the VIP, in its own words."""

    @abc.abstractmethod
    def writes(self) -> dict[int, int]:
        """API writes per node since reset_writes()."""

    @abc.abstractmethod
    def reset_writes(self) -> None: ...

    @abc.abstractmethod
    def remove_behind_the_back(self, i: int) -> None: ...

    @abc.abstractmethod
    def fail_writes(self, kind: str, count: int) -> None:
        """The next `count` claiming writes fail with the cloud's "5xx" or "throttle" error."""

    @abc.abstractmethod
    def slow_writes(self, seconds: float) -> None:
        """Every claiming write takes `seconds` (0: back to normal)."""

    def forwarder(self, i: int) -> Forwarder:
        """Node i's way to the API: pause() makes the API unreachable from it."""
        return self.site.forwarders[i]

    @abc.abstractmethod
    def close(self) -> None: ...


class Aws(EmulatedCloud):
    site: AwsSite

    def __init__(self, mode: str, profile: Profile = INSTANT) -> None:
        from .aws_site import AwsSite

        self.mode, self.vip, self.profile = mode, AwsSite.vip_for(mode, VIP), profile
        self.on_host = mode != "elastic_ip"

    def open(self, topo: Topology, workdir: Path) -> list[str]:
        from .aws_site import AwsSite
        from .ec2_emulator import CONSISTENCY, Ec2Server, build_world

        self.server = Ec2Server()
        self.world = build_world(self.server, tuple(str(n.ip) for n in topo.nodes))
        CONSISTENCY["window"] = self.profile.consistency
        self.site = AwsSite(topo, self.world, self.server.port, self.edge(self.server.port, workdir),
                            backend=self.server.ec2_backend)
        if self.mode == "route_table":  # as the Terraform example sets it: traffic routed to the VIP is accepted
            for eni in self.world.enis:
                self.world.client.modify_network_interface_attribute(NetworkInterfaceId=eni,
                                                                     SourceDestCheck={"Value": False})
        return [f"instance {self.world.instances[i]}, ENI {self.world.enis[i]} (found through IMDSv2)"
                for i in range(len(topo.nodes))]

    def env(self) -> dict[str, str]:
        from .aws_site import EC2_PORT

        # `cloudvip doctor` asks STS and IAM (the policy simulation) where it asks EC2
        api = f"{self.site.edge.scheme}://127.0.0.1:{EC2_PORT}"
        return super().env() | {"AWS_ENDPOINT_URL_STS": api, "AWS_ENDPOINT_URL_IAM": api}

    def follow(self, fabric: Fabric) -> None:
        if self.mode == "secondary_ip":
            self.site.data_plane = (self.vip, lambda: fabric.applied.node)

    def route(self) -> Route:
        return self.site.route(self.mode, self.vip, self.server.ec2_backend())

    def describe(self) -> str:
        where = {"secondary_ip": f"EC2: secondary private IP {self.vip} on",
                 "elastic_ip": "EC2: Elastic IP associated with",
                 "route_table": f"EC2: route {self.vip}/32 in {self.world.route_table} ->"}[self.mode]
        i = self.owner()
        return f"{where} " + (f"node{i + 1}'s {self.world.enis[i]}" if i is not None else "nobody")

    def writes(self) -> dict[int, int]:
        from .ec2_emulator import writes

        return {self.world.enis.index(e): n for e, n in writes().items() if e in self.world.enis}

    def reset_writes(self) -> None:
        from .ec2_emulator import reset_observations

        reset_observations()

    def remove_behind_the_back(self, i: int) -> None:
        self.site.remove_in_cloud(self.mode, self.vip, self.world.enis[i])

    def fail_writes(self, kind: str, count: int) -> None:
        from .aws_site import TAKEOVER_WRITE
        from .ec2_emulator import FAULTS

        error = ("InternalError", 500) if kind == "5xx" else ("RequestLimitExceeded", 503)
        FAULTS[TAKEOVER_WRITE[self.mode]] = [error] * count

    def slow_writes(self, seconds: float) -> None:
        from .aws_site import TAKEOVER_WRITE
        from .ec2_emulator import DELAYS

        DELAYS[TAKEOVER_WRITE[self.mode]] = seconds

    def close(self) -> None:
        from .ec2_emulator import CONSISTENCY

        CONSISTENCY["window"] = 0.0
        if hasattr(self, "site"):
            self.site.close()
        if hasattr(self, "server"):
            self.server.stop()


class OwnEmulator(EmulatedCloud):
    """A cloud whose emulator is ours (`world.emulator`, an HTTP server in this process)."""

    world: HetznerWorld | GceWorld | ArmWorld
    site: HetznerSite | GceSite | AzureSite
    #: the emulator's error for fail_writes' "5xx" and "throttle": (status, the cloud's code)
    write_errors: dict[str, tuple[int, str]] = {}

    @abc.abstractmethod
    def _write_op(self) -> str:
        """The emulator's name of the claiming write (where faults and delays go)."""

    def fail_writes(self, kind: str, count: int) -> None:
        self.world.emulator.faults[self._write_op()] = [self.write_errors[kind]] * count

    def slow_writes(self, seconds: float) -> None:
        self.world.emulator.delays[self._write_op()] = seconds

    def reset_writes(self) -> None:
        with self.world.emulator.lock:
            self.world.emulator.calls.clear()

    def close(self) -> None:
        if hasattr(self, "site"):
            self.site.close()
        if hasattr(self, "world"):
            self.world.emulator.close()


class Hetzner(OwnEmulator):
    site: HetznerSite
    world: HetznerWorld

    def __init__(self, mode: str, profile: Profile = INSTANT) -> None:
        from .hetzner_site import HetznerSite

        self.mode, self.vip, self.profile = mode, HetznerSite.vip_for(mode), profile

    def open(self, topo: Topology, workdir: Path) -> list[str]:
        from .hcloud_emulator import TOKEN, build_world
        from .hetzner_site import HetznerSite

        token = workdir / "hcloud-token"
        token.write_text(TOKEN + "\n")
        os.chmod(token, 0o600)
        self.world = build_world(tuple(str(n.ip) for n in topo.nodes), action_seconds=self.profile.action_seconds)
        self.site = HetznerSite(topo, self.world, str(token), self.edge(self.world.emulator.port, workdir))
        return [f"server {s.id} (found through the metadata service)" for s in self.world.servers]

    def route(self) -> Route:
        return self.site.route(self.mode)

    def describe(self) -> str:
        i = self.owner()
        what = (f"floating IP {self.vip} assigned to" if self.mode == "floating_ip"
                else f"alias IP {self.vip} on")
        return f"Hetzner Cloud: {what} " + (f"node{i + 1}'s server {self.world.servers[i].id}"
                                            if i is not None else "nobody")

    def writes(self) -> dict[int, int]:
        ids = [s.id for s in self.world.servers]
        return {ids.index(sid): n for sid, n in self.world.emulator.writes().items() if sid in ids}


    def remove_behind_the_back(self, i: int) -> None:
        emu = self.world.emulator
        with emu.lock:
            if self.mode == "floating_ip":
                self.world.floating_ip.server = None
            else:
                server = emu.servers[self.world.servers[i].id]
                ip, alias = server.private[self.world.network]
                server.private[self.world.network] = (ip, [a for a in alias if a != self.vip])

    @property
    def move_seconds(self) -> float:
        return self.profile.action_seconds

    def _write_op(self) -> str:
        return "assign" if self.mode == "floating_ip" else "change_alias_ips"

    write_errors = {"5xx": (503, "unavailable"), "throttle": (429, "rate_limit_exceeded")}



class CloudLab(Lab):
    echo = Lab.echo + ("now points to", "re-asserting", "split brain", "handed the VIP", "failed")

    def __init__(self, workdir: Path, cloud: EmulatedCloud) -> None:
        super().__init__(2, workdir, None, priorities={0: 100, 1: 90})
        self.cloud = cloud
        self.prefix = 24 if cloud.vip == VIP else 32

    def holder(self) -> int | None:
        """The live node owning the VIP in the cloud, and (where the host carries it) alone carrying it."""
        owner = self.cloud.owner()
        if owner is None or not self.agents[owner].alive:
            return None
        if self.cloud.on_host:
            carrying = [i for i, a in enumerate(self.agents) if a.alive and a.has_vip(self.cloud.vip)]
            if carrying != [owner]:
                return None
        return owner

    def view(self) -> str:
        writes = self.cloud.writes()
        counted = ", ".join(f"node{i + 1} {n}" for i, n in sorted(writes.items())) or "none"
        return f"{self.cloud.describe()}; API writes: {counted}"

    def config(self, i: int) -> str:
        node = self.topo.nodes[i]
        peers = [n for n in self.topo.nodes if n is not node]
        return f"global_defs {{\n    router_id node{i + 1}\n}}\n\n" + instance_block(
            node, peers, priority=self.priorities[i], version=2, advert=1, vip=f"{self.cloud.vip}/{self.prefix}",
            extra=self.cloud.cloud_block(i))

    def step(self, want: int, timeout: float, failed: str) -> float | None:
        """Wait for node `want` to own the VIP (the caller acted); report a failure."""
        done = self.wait_holder(want, timeout)
        self.agent_lines()
        if done is None:
            self.say(f"{failed} FAILED; {self.view()}")
            for i, agent in enumerate(self.agents):
                print(f"  node{i + 1}'s last log lines:", *agent.log.splitlines()[-12:], sep="\n    ")
        return done

    def data_plane_lines(self) -> None:
        for t, text in self.fabric.take_events():
            print(f"[{t - self.t0:6.2f}s] {text}", flush=True)

    def served(self, want: int, since: float) -> bool:
        """Wait until the data plane sends the VIP to node `want` and the client is answered by
        it after `since`; say so if it is not."""
        timeout = self.cloud.propagation + 15
        done = self.topo.wait_for(lambda: first_answer(self.fabric, self.prober, want, since) is not None,
                                  timeout, 0.01)
        self.data_plane_lines()
        if done is None:
            self.say(f"the client is not answered by node{want + 1} {timeout:.0f} s later")
        return done is not None

    def client_outage(self, since: float, want: int, split: bool = True) -> bool:
        """Once the client is answered by node `want`, print its outage since `since`; `split`:
        into detection, API and propagation (fabric.outage_parts)."""
        if not self.served(want, since):
            return False
        parts = outage_parts(self.fabric, self.prober, str(self.topo.nodes[want].ip), want, since)
        if parts is None or parts["outage"] < 0.05:
            self.say("client outage: none (every request answered)")
        elif not split:
            self.say(f"client outage: {parts['outage']:.3f} s")
        else:
            self.say(f"client outage: {parts['outage']:.3f} s (detection {parts['detection']:.3f}, "
                     f"API {parts['api']:.3f}, propagation {parts['propagation']:.3f})")
        return True

    def elect(self, what: str) -> bool:
        for i in range(2):
            self.start(i)
        self.say(f"started {what}")
        started = time.monotonic()
        if self.step(0, 10 + self.cloud.move_seconds, "election") is None or not self.served(0, started):
            return False
        self.say(f"election: {self.view()}; the client is answered by node1")
        return True

    def doctor(self) -> None:
        """`cloudvip doctor` on the backup, as an operator runs it before trusting the pair."""
        self.say("cloudvip doctor on node2 (changes nothing; listens for node1's adverts):")
        done = self.agents[1].doctor()
        print("    " + (done.stdout or done.stderr).strip().replace("\n", "\n    "), flush=True)

    def kill_master(self, what: str) -> float | None:
        """SIGKILL node1 (`what` runs there) and take its link down: seconds until node2 owns the VIP."""
        time.sleep(1.5 + random.random())  # at some phase of the advert interval
        self.cloud.reset_writes()
        self.say(f"node1 (the master) dies: SIGKILL of {what} and its link down")
        killed = time.monotonic()
        self.stop(0, signal.SIGKILL)
        self.topo.set_link(self.topo.nodes[0], False)
        moved = self.step(1, master_down_interval(2, 90, 100) + 5 + self.cloud.move_seconds, "failover")
        if moved is None or not self.client_outage(killed, 1):
            return None
        return moved - killed

    def restart_node1(self, what: str) -> bool:
        self.cloud.reset_writes()
        self.say(f"restarting node1: {what} comes back as BACKUP and preempts")
        self.agents[0].drop_vip(f"{self.cloud.vip}/{self.prefix}")
        self.topo.set_link(self.topo.nodes[0], True)
        self.fabric.restore_routes()
        returned = time.monotonic()
        self.start(0)
        if self.step(0, master_down_interval(2, 100, 100) + 5 + self.cloud.move_seconds, "preemption") is None:
            return False
        if not self.client_outage(returned, 0):
            return False
        self.say(f"preemption: {self.view()}")
        return True

    def open_cloud(self) -> list[str]:
        """The namespaces, the emulated cloud and its data plane, and the client: lines naming the nodes."""
        profile = self.cloud.profile
        print(f"cloudvip lab: starting the cloud API emulator on 127.0.0.1, profile {profile.name}")
        if profile is not INSTANT:
            print(f"  API {profile.rtt * 1000:.0f} ms away over {'HTTPS (lab CA)' if profile.tls else 'HTTP'}; "
                  f"the data plane follows the cloud {self.cloud.propagation:g} s later "
                  f"({SOURCES.get(self.cloud.kind, 'assumption')})")
        lines = self.cloud.open(self.topo.create(), self.workdir)
        self.fabric = Fabric(self.topo, self.cloud.vip, self.cloud.propagation, self.cloud.route,
                             self.cloud.on_host)
        self.cloud.follow(self.fabric)
        self.prober = Client(self.fabric)
        print(f"  a client at {self.fabric.client.ip} asks {self.cloud.vip} every 10 ms, through the cloud's router")
        return lines

    def run(self) -> int:
        lines = self.open_cloud()
        self.agents = [Daemon(self.topo, node, "cloudvip", self.config(i), self.workdir, log_level="info",
                              env=self.cloud.env())
                       for i, node in enumerate(self.topo.nodes)]
        for i, node in enumerate(self.topo.nodes):
            print(f"  node{i + 1} {node.ip} priority {self.priorities[i]}: {lines[i]}")
        print(f"  VIP {self.cloud.vip}; node1's config ({self.agents[0].conf}):\n")
        print("    " + self.config(0).replace("\n", "\n    "))
        if not self.elect("2 agents"):
            return 1
        self.doctor()
        failover = self.kill_master("its agent")
        if failover is None:
            return 1
        self.say(f"failover: {failover:.3f} s after the kill (Master_Down_Interval "
                 f"{master_down_interval(2, 90, 100):.3f} s after node1's last advert); {self.view()}")

        self.say("someone removes the VIP in the cloud behind the agents' back")
        self.cloud.remove_behind_the_back(1)
        removed = time.monotonic()
        self.cloud.reset_writes()  # the agents' writes only
        back = self.step(1, RECONCILE + 5 + self.cloud.move_seconds, "reconciliation")
        if back is None or not self.client_outage(removed, 1, split=False):
            return 1
        self.say(f"reconciliation (every {RECONCILE:g} s) re-asserted it {back - removed:.3f} s later; {self.view()}")
        if not self.restart_node1("it"):
            return 1

        time.sleep(1.5)
        self.cloud.reset_writes()
        self.say("SIGTERM node1: it sends priority 0, so node2 waits only Skew_Time")
        termed = time.monotonic()
        self.stop(0, signal.SIGTERM)
        moved = self.step(1, 5 + self.cloud.move_seconds, "graceful handover")
        if moved is None or not self.client_outage(termed, 1):
            return 1
        self.say(f"handover: {moved - termed:.3f} s after SIGTERM (Skew_Time {skew_time(2, 90, 100):.3f} s); "
                 f"{self.view()}")
        print("\nlab OK: the cloud followed the election, the failover, a change behind our back, preemption "
              "and the graceful handover")
        return 0

    def cleanup(self) -> None:
        try:
            for part in ("prober", "fabric"):
                if hasattr(self, part):
                    getattr(self, part).close()
            super().cleanup()
        finally:
            self.cloud.close()


class Gcp(OwnEmulator):
    site: GceSite
    world: GceWorld

    def __init__(self, mode: str, profile: Profile = INSTANT) -> None:
        from .gce_site import GceSite

        self.mode, self.vip, self.profile = mode, GceSite.vip_for(mode), profile

    @property
    def kind(self) -> str:
        return f"gcp_{self.mode}"

    def open(self, topo: Topology, workdir: Path) -> list[str]:
        from .gce_emulator import build_world
        from .gce_site import GceSite

        self.world = build_world([(str(n.ip), n.mac) for n in topo.nodes], self.profile.operation_seconds)
        self.site = GceSite(topo, self.world, self.edge(self.world.emulator.port, workdir))
        return [f"VM {i.name} in {i.zone} (found through the metadata server, its service account's token too)"
                for i in self.world.instances]

    def env(self) -> dict[str, str]:
        return self.site.env()

    def route(self) -> Route:
        return self.site.route(self.mode, self.vip)

    def describe(self) -> str:
        i = self.owner()
        what = f"alias IP range {self.vip}/32 on" if self.mode == "alias_ip" else f"route {self.vip}/32 ->"
        return f"Compute Engine: {what} " + (f"node{i + 1}" if i is not None else "nobody")

    def writes(self) -> dict[int, int]:
        names = [i.name for i in self.world.instances]
        return {names.index(n): c for n, c in self.world.emulator.writes().items() if n in names}


    def remove_behind_the_back(self, i: int) -> None:
        emu = self.world.emulator
        with emu.lock:
            if self.mode == "alias_ip":
                nic = self.world.instances[i].nics[0]
                nic.alias = [a for a in nic.alias if a != f"{self.vip}/32"]
            else:
                emu.routes.clear()

    @property
    def move_seconds(self) -> float:
        return 2 * self.profile.operation_seconds  # remove + add, or delete + insert

    def _write_op(self) -> str:
        return "update_nic" if self.mode == "alias_ip" else "insert_route"

    write_errors = {"5xx": (503, "backendError"), "throttle": (429, "rateLimitExceeded")}



class Azure(OwnEmulator):
    site: AzureSite
    world: ArmWorld

    def __init__(self, mode: str, profile: Profile = INSTANT) -> None:
        from .azure_site import AzureSite

        self.mode, self.vip, self.profile = mode, AzureSite.vip_for(mode), profile

    @property
    def kind(self) -> str:
        return f"azure_{self.mode}"

    def edge(self, emulator_port: int, workdir: Path) -> ApiEdge:
        """Always TLS: azure-core sends its bearer token over HTTPS only."""
        return ApiEdge(emulator_port, self.profile.rtt, LabCa(workdir / "lab-ca"), self.profile.idle_close)

    def open(self, topo: Topology, workdir: Path) -> list[str]:
        from .arm_emulator import build_world
        from .azure_site import AzureSite

        self.world = build_world([(str(n.ip), n.mac) for n in topo.nodes], self.profile.arm_seconds.get(self.kind, 0.0))
        self.site = AzureSite(topo, self.world, self.edge(self.world.emulator.port, workdir))
        if self.mode == "route_table":  # as the Terraform example sets it: the VIP routed to a NIC is accepted
            for nic in self.world.nics:
                nic.ip_forwarding = True
        return [f"VM {n.vm}, NIC {n.name} (found through IMDS, its managed identity's token too)"
                for n in self.world.nics]

    def env(self) -> dict[str, str]:
        return self.site.env()

    def route(self) -> Route:
        return self.site.route(self.mode, self.vip)

    def describe(self) -> str:
        i = self.owner()
        what = f"route {self.vip}/32 -> VirtualAppliance" if self.mode == "route_table" else \
            f"IP configuration {self.vip} on"
        return f"Azure: {what} " + (f"node{i + 1}" if i is not None else "nobody")

    def writes(self) -> dict[int, int]:
        nodes = self.site.topo.nodes
        keys = [n.name for n in self.world.nics] if self.mode == "ip_config" else [str(n.ip) for n in nodes]
        return {keys.index(k): c for k, c in self.world.emulator.writes().items() if k in keys}

    def remove_behind_the_back(self, i: int) -> None:
        emu = self.world.emulator
        with emu.lock:
            if self.mode == "ip_config":
                nic = self.world.nics[i]
                nic.configs = [c for c in nic.configs if c.ip != self.vip]
            else:
                emu.tables[self.world.table].clear()

    @property
    def move_seconds(self) -> float:
        seconds = self.profile.arm_seconds.get(self.kind, 0.0)
        return 2 * seconds if self.mode == "ip_config" else seconds  # remove + add; one route update

    def _write_op(self) -> str:
        return "put_nic" if self.mode == "ip_config" else "put_route"

    write_errors = {"5xx": (503, "ServiceUnavailable"), "throttle": (429, "TooManyRequests")}


def main(args: argparse.Namespace) -> int:
    needs = {"aws": ("boto3", "moto"), "hetzner": ("hcloud", "yaml"), "gcp": ("google.cloud.compute_v1",),
             "azure": ("azure.mgmt.network", "azure.identity")}[args.cloud]
    try:
        for module in needs:
            __import__(module)
    except ImportError:
        print(f"cloudvip lab --cloud {args.cloud} needs {' and '.join(needs)}: "
              f"pip install 'cloudvip[{args.cloud},lab]'")
        return 2
    modes = {"aws": ("secondary_ip", "elastic_ip", "route_table"), "hetzner": ("floating_ip", "alias_ip"),
             "gcp": ("alias_ip", "route"), "azure": ("route_table", "ip_config")}[args.cloud]
    mode = args.mode or modes[0]
    if mode not in modes:
        print(f"cloudvip lab --cloud {args.cloud}: --mode is one of {', '.join(modes)}")
        return 2
    profile = PROFILES[args.profile].with_changes(rtt=args.rtt, propagation=args.propagation)
    kinds: dict[str, type[Aws] | type[Hetzner] | type[Gcp] | type[Azure]] = {"aws": Aws, "hetzner": Hetzner,
                                                                             "gcp": Gcp, "azure": Azure}
    cloud: EmulatedCloud = kinds[args.cloud](mode, profile)
    with tempfile.TemporaryDirectory(prefix="cloudvip-lab-") as tmp:
        if args.companion:
            from .companion_demo import CompanionLab

            return run_lab(CompanionLab(Path(tmp), cloud))
        return run_lab(CloudLab(Path(tmp), cloud))
