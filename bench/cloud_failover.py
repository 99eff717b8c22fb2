#!/usr/bin/env python3
"""Cloud failover as the client sees it: how long a client cannot reach the VIP when the master
dies (SIGKILL) or resigns (SIGTERM: priority 0), for cloudvip and for keepalived with the
`notify_master` script people write, same run, same emulated cloud, same profile:

- aws: secondary_ip on moto (corrected: lab/cloudvip_lab/ec2_emulator.py); the script runs
  `aws ec2 assign-private-ip-addresses --allow-reassignment` (awscli);
- hetzner: floating_ip on lab/cloudvip_lab/hcloud_emulator.py; the script `curl`s
  POST /v1/floating_ips/{id}/actions/assign;
- gcp: alias_ip on lab/cloudvip_lab/gce_emulator.py; the script is bench/gcp_move_vip.py,
  Python with google-cloud-compute started cold (remove at the holder, add here);
- azure: route_table on lab/cloudvip_lab/arm_emulator.py; the script is bench/azure_move_vip.py,
  Python with azure-mgmt-network started cold (the route created or updated, its operation waited for).

The profile (default `realistic`, lab/cloudvip_lab/profiles.py, docs/lab.md): the API 30 ms away
over HTTPS with a lab CA, EC2 reads lagging writes by 1 s, Hetzner actions running 2 s, and a
routed data plane that sends the VIP where the cloud says some seconds after it says so. A client
behind the cloud's router asks the VIP every 10 ms; its longest gap is the outage, split into
detection (its last answer -> the new master's first advert), API (-> the cloud's state names
the new master) and propagation (-> the client's first answer).

The companion kinds run keepalived as distributions harden it (enable_script_security,
notify scripts as keepalived_script), its keepalived.conf free of cloudvip keywords, the cloud
block in the companion file: `cloudvip notify` runs as keepalived_script (the system Python, for
the pyenv one under /root is closed to that user), or keepalived writes its notify_fifo.

Two nodes in namespaces (VRRPv3, advert_int 0.1 unless --advert). Each run kills the master
node (node1: SIGKILL of its daemons and its link down) or stops its daemons (SIGTERM: the VRRP
daemon resigns with priority 0 and removes the address), waits for the client to be answered by
node2, then node1 comes back, preempts, and the client is answered by it again before the next run.

    python bench/cloud_failover.py --cloud aws|hetzner|gcp|azure [--runs 20] [--profile realistic|instant]
Needs root, keepalived; aws: boto3 + moto (dev extra) and awscli (installed into .venv-awscli
on first use); hetzner: hcloud and curl.
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

from common import stats  # noqa: E402

from cloudvip.state_machine import master_down_interval, skew_time  # noqa: E402
from cloudvip_lab.cloud_demo import Aws, Azure, EmulatedCloud, Gcp, Hetzner  # noqa: E402
from cloudvip_lab.daemons import Daemon, instance_block  # noqa: E402
from cloudvip_lab.fabric import Client, Fabric, first_answer, outage_parts  # noqa: E402
from cloudvip_lab.hardened_keepalived import ScriptUser, SecureDir, notify_wrapper, write_pair_files  # noqa: E402
from cloudvip_lab.profiles import PROFILES  # noqa: E402
from cloudvip_lab.topology import Node, Topology  # noqa: E402

AWSCLI_VENV = ROOT / ".venv-awscli"
KINDS = ("cloudvip", "companion", "fifo", "keepalived")
SCENARIOS = ("SIGKILL", "priority 0")
PARTS = ("outage", "detection", "api", "propagation")


class ScriptedAws(Aws):
    """secondary_ip; the tutorial's notify_master script runs awscli."""

    def __init__(self, profile_name: str) -> None:
        super().__init__("secondary_ip", PROFILES[profile_name])

    def open(self, topo: Topology, workdir: Path) -> list[str]:
        lines = super().open(topo, workdir)
        self.aws = awscli()
        version = subprocess.run([str(self.aws), "--version"], capture_output=True, text=True)
        self.script_tool = (version.stdout + version.stderr).strip()
        return lines

    def notify_script(self, i: int) -> str:
        from cloudvip_lab.aws_site import EC2_PORT
        from cloudvip_lab.ec2_emulator import REGION

        ca = "".join(f"export {k}={v}\n" for k, v in self.env().items())
        return (f"#!/bin/sh\nexport AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
                f"AWS_DEFAULT_REGION={REGION}\nexport AWS_EC2_METADATA_DISABLED=true\n{ca}"
                f"exec {self.aws} ec2 assign-private-ip-addresses --network-interface-id {self.world.enis[i]} \\\n"
                f"    --private-ip-addresses {self.vip} --allow-reassignment "
                f"--endpoint-url {self.site.edge.scheme}://127.0.0.1:{EC2_PORT}\n")


class ScriptedHetzner(Hetzner):
    """floating_ip; the tutorial's notify_master script runs curl."""

    def __init__(self, profile_name: str) -> None:
        super().__init__("floating_ip", PROFILES[profile_name])

    def open(self, topo: Topology, workdir: Path) -> list[str]:
        lines = super().open(topo, workdir)
        version = subprocess.run(["curl", "--version"], capture_output=True, text=True)
        self.script_tool = version.stdout.split("\n")[0][:40]
        return lines

    def notify_script(self, i: int) -> str:
        from cloudvip_lab.hetzner_site import API_PORT

        ca = f"--cacert {self.site.edge.ca.ca_file} " if self.site.edge.ca is not None else ""
        return (f"#!/bin/sh\nexec curl -sf {ca}-X POST -H \"Authorization: Bearer $(cat {self.site.token_file})\" "
                f"-H 'Content-Type: application/json' -d '{{\"server\": {self.world.servers[i].id}}}' \\\n"
                f"    {self.site.edge.scheme}://127.0.0.1:{API_PORT}/v1/floating_ips/{self.world.floating_ip.id}"
                f"/actions/assign\n")


class ScriptedGcp(Gcp):
    """alias_ip; the notify_master script is Python with the Compute Engine client, cold."""

    def __init__(self, profile_name: str) -> None:
        super().__init__("alias_ip", PROFILES[profile_name])
        self.script_tool = "python google-cloud-compute"

    def notify_script(self, i: int) -> str:
        from cloudvip_lab.gce_emulator import PROJECT
        from cloudvip_lab.gce_site import API_PORT

        env = "".join(f"export {k}={v}\n" for k, v in self.env().items())
        inst = self.world.instances[i]
        return (f"#!/bin/sh\n{env}exec {sys.executable} {ROOT / 'bench' / 'gcp_move_vip.py'} {PROJECT} {inst.zone} "
                f"{inst.name} {self.vip} {self.site.edge.scheme}://127.0.0.1:{API_PORT}\n")


class ScriptedAzure(Azure):
    """route_table; the notify_master script is Python with azure-mgmt-network, cold."""

    def __init__(self, profile_name: str) -> None:
        super().__init__("route_table", PROFILES[profile_name])
        self.script_tool = "python azure-mgmt-network"

    def notify_script(self, i: int) -> str:
        from cloudvip_lab.arm_emulator import GROUP, SUBSCRIPTION
        from cloudvip_lab.azure_site import API_PORT

        env = "".join(f"export {k}={v}\n" for k, v in self.env().items())
        return (f"#!/bin/sh\n{env}exec {sys.executable} {ROOT / 'bench' / 'azure_move_vip.py'} {SUBSCRIPTION} {GROUP} "
                f"{self.world.table} {self.vip} {self.site.topo.nodes[i].ip} https://127.0.0.1:{API_PORT}\n")


Scripted = ScriptedAws | ScriptedHetzner | ScriptedGcp | ScriptedAzure


def awscli() -> Path:
    aws = AWSCLI_VENV / "bin" / "aws"
    if not aws.exists():
        print("installing awscli into .venv-awscli (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
        subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return aws


def config(kind: str, cloud: Scripted, node: Node, i: int, peers: list[Node], priority: int,
           work: Path, notify: Path, wire: dict[str, float]) -> dict[str, Path]:
    """The config file of each daemon of this kind on this node."""
    if kind in ("companion", "fifo"):  # a hardened keepalived; the companion reads its own file
        fifo = work / f"{kind}-{node.name}" / "notify.fifo" if kind == "fifo" else None
        pair = write_pair_files(work / f"{kind}-{node.name}", node, peers, priority=priority,
                                cloud_block=cloud.cloud_block(i), notify=notify, vip=f"{cloud.vip}/32", fifo=fifo,
                                **wire)  # type: ignore[arg-type]
        if fifo is not None:  # the FIFO alone carries the events
            text = pair.keepalived_conf.read_text()
            pair.keepalived_conf.write_text("\n".join(line for line in text.splitlines() if str(notify) not in line))
        return {"companion": pair.companion_conf, "keepalived": pair.keepalived_conf}
    conf = work / f"{kind}-{node.name}.conf"
    if kind == "cloudvip":
        extra = cloud.cloud_block(i)
    else:
        script = work / f"notify_master-{node.name}.sh"
        script.write_text(cloud.notify_script(i))
        script.chmod(0o755)
        extra = f"    notify_master {script}\n"
    conf.write_text(f"global_defs {{\n    router_id {node.name}\n    script_user root\n}}\n\n"
                    + instance_block(node, peers, priority=priority, vip=f"{cloud.vip}/32", extra=extra,
                                     **wire))  # type: ignore[arg-type]
    return {kind: conf}


class NodeDaemons:
    """What runs on one node for a kind: an agent, a keepalived, or a keepalived and its companion."""

    def __init__(self, topo: Topology, node: Node, confs: dict[str, Path], work: Path, env: dict[str, str]) -> None:
        self.daemons = [Daemon(topo, node, k, conf, work / k, log_level="info", env=env) for k, conf in confs.items()]

    def start(self) -> None:
        for d in self.daemons:
            d.start()
            if d.kind == "companion":  # ready before keepalived, as the units order them
                d.topo.wait_for(lambda d=d: "cloudvip companion:" in d.log, 15, 0.02)  # type: ignore[misc]

    def kill(self) -> None:
        self.daemons[-1].kill()  # every process in the namespace: the whole node
        for d in self.daemons[:-1]:
            d.kill()  # reaped, and its socket removed (a killed daemon leaves it behind)

    def term(self) -> None:
        """SIGTERM: the VRRP daemon resigns (priority 0), then the companion stops."""
        for d in reversed(self.daemons):
            if d.alive:
                d.term(15)

    def drop_vip(self, vip: str) -> None:
        self.daemons[-1].drop_vip(vip)

    @property
    def log(self) -> str:
        """The end of each daemon's log (the companion's too, not only keepalived's)."""
        return "\n".join(f"--- {d.kind} on {d.node.name}:\n{d.log[-2500:]}" for d in self.daemons)


class Run:
    """The namespaces, the cloud, its data plane and the client, shared by every kind."""

    def __init__(self, topo: Topology, cloud: Scripted, work: Path) -> None:
        self.topo, self.cloud, self.work = topo, cloud, work
        self.fabric = Fabric(topo, cloud.vip, cloud.propagation, cloud.route, cloud.on_host)
        cloud.follow(self.fabric)
        self.client = Client(self.fabric)

    def served(self, want: int, since: float, timeout: float = 30) -> None:
        """Wait until the client is answered by node `want` after `since` (fabric.first_answer)."""
        if self.topo.wait_for(lambda: first_answer(self.fabric, self.client, want, since) is not None,
                              timeout, 0.01) is None:
            raise RuntimeError(f"the client was not answered by node{want + 1} within {timeout} s")

    def split(self, since: float, want: int) -> dict[str, float]:
        """The client's outage after `since` and its parts (fabric.outage_parts)."""
        self.served(want, since)
        parts = outage_parts(self.fabric, self.client, str(self.topo.nodes[want].ip), want, since)
        if parts is None:
            raise RuntimeError("no answer after the fault")
        return parts

    def close(self) -> None:
        self.client.close()
        self.fabric.close()


def runs(kind: str, run: Run, count: int, notify: Path, wire: dict[str, float],
         logs_above: float | None = None) -> dict[str, list[dict[str, float]]]:
    topo, cloud = run.topo, run.cloud
    n1, n2 = topo.nodes
    env = cloud.env()
    master = NodeDaemons(topo, n1, config(kind, cloud, n1, 0, [n2], 100, run.work, notify, wire), run.work, env)
    backup = NodeDaemons(topo, n2, config(kind, cloud, n2, 1, [n1], 90, run.work, notify, wire), run.work, env)
    out: dict[str, list[dict[str, float]]] = {s: [] for s in SCENARIOS}
    try:
        alone = time.monotonic()
        backup.start()  # first, and the cloud pointing to it, as a running pair would be: two nodes
        run.served(1, alone)  # claiming at once at start-up is no failover (a Hetzner action answers 423)
        time.sleep(cloud.profile.action_seconds + 0.5)  # its own claim's action over, if the cloud was its already
        started = time.monotonic()
        master.start()
        for i in range(count):
            for scenario in SCENARIOS:
                try:
                    run.served(0, started)
                except RuntimeError as exc:
                    raise RuntimeError(f"{kind}: {exc}\n{master.log}\n{backup.log}") from None
                time.sleep(0.5 + random.random() * wire["advert"])  # settled; at some phase of the advert
                fault = time.monotonic()
                if scenario == "SIGKILL":  # the node dies: its daemons, and its link (its echo service)
                    master.kill()
                    topo.set_link(n1, False)
                else:
                    master.term()
                try:
                    out[scenario].append(run.split(fault, 1))
                except RuntimeError as exc:
                    raise RuntimeError(f"{kind} {scenario}: {exc}\n{backup.log}") from None
                if logs_above is not None and out[scenario][-1]["outage"] > logs_above * 1000:
                    print(f"\n{kind} {scenario} run {i + 1}: outage {out[scenario][-1]['outage'] / 1000:.3f} s "
                          f"(fault at monotonic {fault:.3f})\n{backup.log}", flush=True)
                master.drop_vip(f"{cloud.vip}/32")
                topo.set_link(n1, True)
                run.fabric.restore_routes()
                started = time.monotonic()
                master.start()  # comes back, preempts and claims: the next run starts from node1 again
            print(f"  {kind}: {i + 1}/{count}", end="\r", flush=True)
    finally:
        master.kill()
        backup.kill()
        topo.set_link(n1, True)
        run.fabric.restore_routes()
        master.drop_vip(f"{cloud.vip}/32")
        backup.drop_vip(f"{cloud.vip}/32")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cloud", choices=["aws", "hetzner", "gcp", "azure"], required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="realistic")
    ap.add_argument("--advert", type=float, default=0.1, help="advert_int (VRRPv3), seconds")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"a subset of {','.join(KINDS)}")
    ap.add_argument("--logs-above", type=float, metavar="SECONDS",
                    help="print the new master's daemon logs after each outage longer than this")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/cloud_failover.py needs root (network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wire = {"version": 3, "advert": args.advert}
    kinds: dict[str, type[ScriptedAws] | type[ScriptedHetzner] | type[ScriptedGcp] | type[ScriptedAzure]] = {
        "aws": ScriptedAws, "hetzner": ScriptedHetzner, "gcp": ScriptedGcp, "azure": ScriptedAzure}
    cloud = kinds[args.cloud](args.profile)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    secure = SecureDir("cloudvip-bench-")
    with tempfile.TemporaryDirectory(prefix="cloudvip-bench-") as tmp, Topology("cvcb", 2) as topo, ScriptUser():
        cloud.open(topo, Path(tmp))
        run = Run(topo, cloud, Path(tmp))
        try:
            print(f"script tool: {cloud.script_tool}; profile {cloud.profile.name}: API "
                  f"{cloud.profile.rtt * 1000:.0f} ms{' over HTTPS' if cloud.profile.tls else ''}, propagation "
                  f"{cloud.propagation:g} s", flush=True)
            notify = notify_wrapper(secure.path)
            for kind in args.kinds.split(","):
                try:
                    results[kind] = runs(kind, run, args.runs, notify, wire, args.logs_above)
                except RuntimeError as exc:  # reported, and the other kinds still run
                    print(f"\n{kind} FAILED: {exc}", flush=True)
                    continue
                report(args, cloud, {kind: results[kind]}, header=False)
        finally:
            run.close()
            cloud.close()
            secure.close()
    report(args, cloud, results)
    return 0


Results = dict[str, dict[str, list[dict[str, float]]]]


def report(args: argparse.Namespace, cloud: EmulatedCloud, results: Results, header: bool = True) -> None:
    tool = getattr(cloud, "script_tool", "script").split()[0]
    label = {"cloudvip": "cloudvip agent", "companion": "keepalived + companion (notify)",
             "fifo": "keepalived + companion (notify_fifo)", "keepalived": f"keepalived + {tool} script"}
    prop = cloud.propagation
    if header:
        print(f"\nclient outage, {args.cloud} {cloud.mode}, profile {cloud.profile.name}, VRRPv3 advert_int "
              f"{args.advert:g}, {args.runs} runs each (s; median / p95)")
    print(f"{'kind':<40} {'scenario':<11} {'outage':>15} {'detection':>15} {'API':>15} {'propagation':>15}")
    for kind, by_scenario in results.items():
        for scenario, rows in by_scenario.items():
            cells = []
            for part in PARTS:
                _, med, p95 = stats([r[part] for r in rows])
                cells.append(f"{med / 1000:6.3f} / {p95 / 1000:6.3f}")
            print(f"{label[kind]:<40} {scenario:<11} " + " ".join(f"{c:>15}" for c in cells))
    cs = round(args.advert * 100)
    mdi, skew = master_down_interval(3, 90, cs), skew_time(3, 90, cs)
    action = cloud.move_seconds  # what the cloud itself runs: Hetzner's action, GCP's two operations
    if "cloudvip" in results and header:
        for scenario, bound in (("SIGKILL", mdi), ("priority 0", skew)):
            med = stats([r["outage"] for r in results["cloudvip"][scenario]])[1] / 1000
            goal = bound + action + prop + cloud.profile.rtt + 0.05
            print(f"goal, cloudvip {scenario}: median {med:.3f} s <= {'MDI' if scenario == 'SIGKILL' else 'Skew_Time'}"
                  f" {bound:.3f}{f' + cloud move {action:g}' if action else ''} + propagation {prop:g} + RTT "
                  f"{cloud.profile.rtt:g} + 0.05 = {goal:.3f} s: {'met' if med <= goal else 'NOT met'}")
            if "keepalived" in results:
                k = stats([r["outage"] for r in results["keepalived"][scenario]])[1] / 1000
                print(f"  keepalived + {tool} script {scenario}: median {k:.3f} s; cloudvip better by {k - med:.3f} s")


if __name__ == "__main__":
    sys.exit(main())
