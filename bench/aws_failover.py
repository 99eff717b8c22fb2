#!/usr/bin/env python3
"""AWS failover: from "becomes master" to "EC2 state changed/verified", cloudvip vs keepalived
calling a `notify_master` script that runs `aws ec2 assign-private-ip-addresses` (awscli),
same run, same emulated EC2 (moto on 127.0.0.1, corrected: cloudvip/lab/ec2_emulator.py).

Two nodes in namespaces (VRRPv3, advert_int 0.1), secondary_ip mode. Each run SIGKILLs the
master (node1) and times, on CLOCK_MONOTONIC (shared by every process and namespace):
- "becomes master": node2's first advert, seen by a probe in node1's namespace;
- "EC2 changed": the end of the successful AssignPrivateIpAddresses naming node2's ENI, as the
  emulator records it;
- "verified" (cloudvip): the end of its next DescribeNetworkInterfaces (its check after the write).
  The awscli script, like the scripts people write, does not verify.
cloudvip's own overhead = master -> verified minus the emulator's time answering the calls cloudvip
made in that window (whole HTTP requests, timed inside the emulator): what remains is the agent,
boto3/botocore and the loopback hops.
Then node1 comes back, preempts (it claims the VIP back), and the next run starts.

    python bench/aws_failover.py [--runs 20]
Needs root, keepalived, boto3 + moto (the dev extra) and awscli (installed into .venv-awscli
on first use).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import stats  # noqa: E402

from cloudvip.lab.aws_site import EC2_PORT, AwsSite  # noqa: E402
from cloudvip.lab.daemons import VIP, Daemon, instance_block  # noqa: E402
from cloudvip.lab.ec2_emulator import CALLS, REGION, Call, Ec2Server, build_world, reset_observations  # noqa: E402
from cloudvip.lab.probe import Probe  # noqa: E402
from cloudvip.lab.topology import Node, Topology  # noqa: E402

AWSCLI_VENV = ROOT / ".venv-awscli"
WIRE = dict(version=3, advert=0.1)
# keepalived's notify_master, as the tutorials write it: move the secondary IP to our ENI.
NOTIFY_MASTER = """#!/bin/sh
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={region}
export AWS_EC2_METADATA_DISABLED=true
exec {aws} ec2 assign-private-ip-addresses --network-interface-id {eni} \\
    --private-ip-addresses {vip} --allow-reassignment --endpoint-url http://127.0.0.1:{port}
"""


def awscli() -> Path:
    aws = AWSCLI_VENV / "bin" / "aws"
    if not aws.exists():
        print("installing awscli into .venv-awscli (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
        subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return aws


def config(kind: str, site: AwsSite, node: Node, peers: list[Node], priority: int, eni: str, work: Path) -> str:
    if kind == "cloudvip":
        extra = site.cloud_block("secondary_ip")
    else:
        script = work / f"notify_master-{node.name}.sh"
        script.write_text(NOTIFY_MASTER.format(region=REGION, aws=awscli(), eni=eni, vip=VIP, port=EC2_PORT))
        script.chmod(0o755)
        extra = f"    notify_master {script}\n"
    return (f"global_defs {{\n    router_id {node.name}\n    script_user root\n}}\n\n"
            + instance_block(node, peers, priority=priority, extra=extra, **WIRE))  # type: ignore[arg-type]


def calls_between(start: float, end: float, eni: str | None = None) -> list[Call]:
    return [c for c in list(CALLS) if c.started >= start and c.ended <= end and (eni is None or c.eni in ("", eni))]


def runs(kind: str, topo: Topology, site: AwsSite, watcher: Node, work: Path, count: int) -> list[dict[str, float]]:
    """`watcher`: node2 also sends its adverts there, where a probe times them."""
    n1, n2 = topo.nodes
    world = site.world
    master = Daemon(topo, n1, kind, config(kind, site, n1, [n2], 100, world.enis[0], work), work,
                    log_level="info")
    backup = Daemon(topo, n2, kind, config(kind, site, n2, [n1, watcher], 90, world.enis[1], work), work,
                    log_level="info")
    probe = Probe(topo, watcher)
    out: list[dict[str, float]] = []
    sequences: set[str] = set()

    def stable(index: int) -> bool:
        return world.vip_enis(VIP) == [world.enis[index]]

    try:
        backup.start()
        master.start()
        for run in range(count):
            if topo.wait_for(lambda: stable(0) and master.has_vip(), 20, 0.02) is None:
                raise RuntimeError(f"{kind}: node1 never owned the VIP\n{master.log[-3000:]}\n{backup.log[-3000:]}")
            time.sleep(0.5 + 0.1 * (run % 10) / 10)  # settled; kill at varying advert phases
            reset_observations()
            t_kill = time.monotonic()
            master.kill()
            # watch the emulator's record, not EC2 through the API: polling would load the emulator
            if topo.wait_for(lambda: any(c.action == "AssignPrivateIpAddresses" and c.eni == world.enis[1]
                                         for c in list(CALLS)), 15, 0.01) is None:
                raise RuntimeError(f"{kind}: node2 never claimed the VIP\n{backup.log[-3000:]}")
            time.sleep(0.2)  # let the verification call land
            if not stable(1):
                raise RuntimeError(f"{kind}: EC2 does not point to node2\n{backup.log[-3000:]}")
            became = min(probe.adverts(str(n2.ip), t_kill, time.monotonic()), default=None)
            if became is None:
                raise RuntimeError(f"{kind}: no advert from node2 after the kill")
            write = next(c for c in CALLS if c.action == "AssignPrivateIpAddresses" and c.eni == world.enis[1]
                         and c.status < 400 and c.started >= became)
            row = {"changed": write.ended - became, "assign_call": write.http_ended - write.http_started}
            if kind == "cloudvip":
                verify = next(c for c in CALLS if c.action == "DescribeNetworkInterfaces" and c.started >= write.ended)
                api = sum(c.http_ended - c.http_started for c in calls_between(became, verify.ended))
                window = calls_between(became, verify.ended)
                row.update(verified=verify.ended - became, overhead=verify.ended - became - api, calls=len(window))
                sequences.add(" ".join(c.action for c in window))
            out.append(row)
            master.drop_vip()
            master.start()  # comes back, preempts and claims: the next run starts from node1 again
    finally:
        master.kill()
        backup.kill()
        probe.close()
        master.drop_vip()
        backup.drop_vip()
    for seq in sorted(sequences):
        print(f"  {kind} API calls seen between becoming master and verified: {seq}")
    return out


def line(label: str, values: list[float]) -> str:
    lo, med, p95 = stats(values)
    return f"  {label:<44} median {med:8.1f} ms   min {lo:8.1f}   p95 {p95:8.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/aws_failover.py needs root (network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    aws = awscli()
    version = subprocess.run([str(aws), "--version"], capture_output=True, text=True)
    print(f"awscli: {(version.stdout + version.stderr).strip()}")
    server = Ec2Server()
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="cloudvip-bench-") as tmp, Topology("cvaws", 2) as topo:
            world = build_world(server)
            site = AwsSite(topo, world, server.port)
            watcher = topo.add_host("w", 60)
            try:
                for kind in ("cloudvip", "keepalived"):
                    results[kind] = runs(kind, topo, site, watcher, Path(tmp), args.runs)
            finally:
                site.close()
    finally:
        server.stop()

    k, c = results["keepalived"], results["cloudvip"]
    print(f"\nbecomes master -> EC2, {args.runs} failovers each (VRRPv3 0.1 s, secondary_ip, emulated EC2):")
    print(line("keepalived + notify_master awscli: changed", [r["changed"] for r in k]))
    print(line("cloudvip: changed", [r["changed"] for r in c]))
    print(line("cloudvip: verified", [r["verified"] for r in c]))
    print(line("cloudvip: own overhead (verified - API time)", [r["overhead"] for r in c]))
    print(line("AssignPrivateIpAddresses request in the emulator", [r["assign_call"] for r in k + c]))
    med = {name: stats([r[key] for r in rows])[1]
           for name, rows, key in (("k", k, "changed"), ("c", c, "changed"), ("v", c, "verified"))}
    print(f"\nratio cloudvip/keepalived+awscli, to EC2 changed: {med['c'] / med['k']:.3f}; "
          f"cloudvip verified vs keepalived+awscli changed: {med['v'] / med['k']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
