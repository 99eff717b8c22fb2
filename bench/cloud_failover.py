#!/usr/bin/env python3
"""Cloud failover: from "becomes master" to "cloud changed/verified", cloudvip vs keepalived
calling the `notify_master` script people write, same run, same emulated API on 127.0.0.1:

- aws: secondary_ip on moto (corrected: lab/cloudvip_lab/ec2_emulator.py); the script runs
  `aws ec2 assign-private-ip-addresses --allow-reassignment` (awscli);
- hetzner: floating_ip on lab/cloudvip_lab/hcloud_emulator.py; the script `curl`s
  POST /v1/floating_ips/{id}/actions/assign.

The companion kinds run keepalived as distributions harden it (enable_script_security,
notify scripts as keepalived_script), its keepalived.conf free of cloudvip keywords, the cloud
block in the companion file: `cloudvip notify` runs as keepalived_script (the system Python, for
the pyenv one under /root is closed to that user), or keepalived writes its notify_fifo.

Two nodes in namespaces (VRRPv3, advert_int 0.1). Each run SIGKILLs the master (node1) and
times, on CLOCK_MONOTONIC (shared by every process and namespace):
- "becomes master": node2's first advert, seen by a probe in a third namespace node2 also sends to;
- "changed": the end of the successful write naming node2, as the emulator records it;
- "verified" (cloudvip): the end of its next read of the owner (its check after the write).
  The scripts, like the ones people write, do not verify.
cloudvip's own overhead = master -> verified minus the emulator's time answering the requests
cloudvip made in that window (whole HTTP requests): what remains is the agent, the SDK and the
loopback hops. Then node1 comes back, preempts, and the next run starts.

    python bench/cloud_failover.py --cloud aws|hetzner [--runs 20]
Needs root, keepalived; aws: boto3 + moto (dev extra) and awscli (installed into .venv-awscli
on first use); hetzner: hcloud and curl.
"""

from __future__ import annotations

import abc
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import stats  # noqa: E402

from cloudvip_lab.daemons import Daemon, instance_block  # noqa: E402
from cloudvip_lab.hardened_keepalived import ScriptUser, SecureDir, notify_wrapper, write_pair_files  # noqa: E402
from cloudvip_lab.probe import Probe  # noqa: E402
from cloudvip_lab.topology import Node, Topology  # noqa: E402

AWSCLI_VENV = ROOT / ".venv-awscli"
WIRE = dict(version=3, advert=0.1)


@dataclass(frozen=True)
class Req:
    """One API request as the emulator saw it."""
    op: str
    started: float
    ended: float
    ok: bool
    target: str  # the ENI / server a write names ('' otherwise)


class Cloud(abc.ABC):
    name: str
    vip: str
    write_op: str  # the write that moves the VIP
    read_op: str  # the read that tells who owns it (cloudvip's check and verify)
    script_tool: str

    @abc.abstractmethod
    def open(self, topo: Topology, work: Path) -> None: ...

    @abc.abstractmethod
    def target(self, i: int) -> str: ...

    @abc.abstractmethod
    def owner(self) -> str:
        """The target owning the VIP now, read from the emulator's state (no API request)."""

    @abc.abstractmethod
    def cloud_block(self) -> str: ...

    @abc.abstractmethod
    def notify_script(self, i: int) -> str: ...

    @abc.abstractmethod
    def requests(self) -> list[Req]: ...

    @abc.abstractmethod
    def reset(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class Aws(Cloud):
    name, write_op, read_op = "aws", "AssignPrivateIpAddresses", "DescribeNetworkInterfaces"

    def open(self, topo: Topology, work: Path) -> None:
        from cloudvip_lab.aws_site import AwsSite
        from cloudvip_lab.daemons import VIP
        from cloudvip_lab.ec2_emulator import Ec2Server, build_world

        self.vip = VIP
        self.server = Ec2Server()
        self.world = build_world(self.server)
        self.site = AwsSite(topo, self.world, self.server.port)
        self.aws = awscli()
        version = subprocess.run([str(self.aws), "--version"], capture_output=True, text=True)
        self.script_tool = (version.stdout + version.stderr).strip()

    def target(self, i: int) -> str:
        return str(self.world.enis[i])

    def owner(self) -> str:
        backend = self.server.ec2_backend()
        return next((e.id for e in backend.enis.values()
                     if self.vip in [a["PrivateIpAddress"] for a in e.private_ip_addresses]), "")

    def cloud_block(self) -> str:
        return self.site.cloud_block("secondary_ip")

    def notify_script(self, i: int) -> str:
        from cloudvip_lab.aws_site import EC2_PORT
        from cloudvip_lab.ec2_emulator import REGION

        return (f"#!/bin/sh\nexport AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
                f"AWS_DEFAULT_REGION={REGION}\nexport AWS_EC2_METADATA_DISABLED=true\n"
                f"exec {self.aws} ec2 assign-private-ip-addresses --network-interface-id {self.target(i)} \\\n"
                f"    --private-ip-addresses {self.vip} --allow-reassignment --endpoint-url http://127.0.0.1:{EC2_PORT}\n")

    def requests(self) -> list[Req]:
        from cloudvip_lab.ec2_emulator import CALLS

        return [Req(c.action, c.http_started, c.http_ended, c.status < 400, c.eni) for c in list(CALLS)]

    def reset(self) -> None:
        from cloudvip_lab.ec2_emulator import reset_observations

        reset_observations()

    def close(self) -> None:
        self.site.close()
        self.server.stop()


class Hetzner(Cloud):
    name, write_op, read_op, script_tool = "hetzner", "assign", "get_floating_ip", "curl"

    def open(self, topo: Topology, work: Path) -> None:
        from cloudvip_lab.hcloud_emulator import TOKEN, build_world
        from cloudvip_lab.hetzner_site import HetznerSite

        self.world = build_world()
        self.vip = HetznerSite.vip_for("floating_ip")
        self.token = work / "hcloud-token"
        self.token.write_text(TOKEN + "\n")
        self.token.chmod(0o600)
        self.site = HetznerSite(topo, self.world, str(self.token))
        version = subprocess.run(["curl", "--version"], capture_output=True, text=True)
        self.script_tool = version.stdout.split("\n")[0][:40]

    def target(self, i: int) -> str:
        return str(self.world.servers[i].id)

    def owner(self) -> str:
        held = self.world.floating_ip.server
        return str(held) if held is not None else ""

    def cloud_block(self) -> str:
        return self.site.cloud_block("floating_ip")

    def notify_script(self, i: int) -> str:
        from cloudvip_lab.hetzner_site import API_PORT

        return (f"#!/bin/sh\nexec curl -sf -X POST -H \"Authorization: Bearer $(cat {self.token})\" "
                f"-H 'Content-Type: application/json' -d '{{\"server\": {self.target(i)}}}' \\\n"
                f"    http://127.0.0.1:{API_PORT}/v1/floating_ips/{self.world.floating_ip.id}/actions/assign\n")

    def requests(self) -> list[Req]:
        with self.world.emulator.lock:
            calls = list(self.world.emulator.calls)
        return [Req(c.op, c.started, c.ended, c.status < 400, str(c.server or "")) for c in calls]

    def reset(self) -> None:
        with self.world.emulator.lock:
            self.world.emulator.calls.clear()

    def close(self) -> None:
        self.site.close()
        self.world.emulator.close()


def awscli() -> Path:
    aws = AWSCLI_VENV / "bin" / "aws"
    if not aws.exists():
        print("installing awscli into .venv-awscli (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
        subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return aws


def config(kind: str, cloud: Cloud, node: Node, i: int, peers: list[Node], priority: int,
           work: Path, notify: Path) -> dict[str, Path]:
    """The config file of each daemon of this kind on this node."""
    if kind in ("companion", "fifo"):  # a hardened keepalived; the companion reads its own file
        fifo = work / f"{kind}-{node.name}" / "notify.fifo" if kind == "fifo" else None
        pair = write_pair_files(work / f"{kind}-{node.name}", node, peers, priority=priority,
                                cloud_block=cloud.cloud_block(), notify=notify, vip=f"{cloud.vip}/32", fifo=fifo,
                                **WIRE)  # type: ignore[arg-type]
        if fifo is not None:  # the FIFO alone carries the events
            text = pair.keepalived_conf.read_text()
            pair.keepalived_conf.write_text("\n".join(line for line in text.splitlines() if str(notify) not in line))
        return {"companion": pair.companion_conf, "keepalived": pair.keepalived_conf}
    conf = work / f"{kind}-{node.name}.conf"
    if kind == "cloudvip":
        extra = cloud.cloud_block()
    else:
        script = work / f"notify_master-{node.name}.sh"
        script.write_text(cloud.notify_script(i))
        script.chmod(0o755)
        extra = f"    notify_master {script}\n"
    conf.write_text(f"global_defs {{\n    router_id {node.name}\n    script_user root\n}}\n\n"
                    + instance_block(node, peers, priority=priority, vip=f"{cloud.vip}/32", extra=extra,
                                     **WIRE))  # type: ignore[arg-type]
    return {kind: conf}


class Node_:
    """What runs on one node for a kind: an agent, a keepalived, or a keepalived and its companion."""

    def __init__(self, kind: str, topo: Topology, node: Node, confs: dict[str, Path], work: Path) -> None:
        self.daemons = [Daemon(topo, node, k, conf, work / k, log_level="info") for k, conf in confs.items()]

    def start(self) -> None:
        for d in self.daemons:
            d.start()
            if d.kind == "companion":  # ready before keepalived, as the units order them
                d.topo.wait_for(lambda d=d: "cloudvip companion:" in d.log, 15, 0.02)  # type: ignore[misc]

    def kill(self) -> None:
        self.daemons[-1].kill()  # every process in the namespace: the whole node

    def has_vip(self, vip: str) -> bool:
        return self.daemons[-1].has_vip(vip)

    def drop_vip(self, vip: str) -> None:
        self.daemons[-1].drop_vip(vip)

    @property
    def log(self) -> str:
        return "\n".join(d.log for d in self.daemons)


def runs(kind: str, topo: Topology, cloud: Cloud, watcher: Node, work: Path, count: int,
         notify: Path) -> list[dict[str, float]]:
    """`watcher`: node2 also sends its adverts there, where a probe times them."""
    n1, n2 = topo.nodes
    master = Node_(kind, topo, n1, config(kind, cloud, n1, 0, [n2], 100, work, notify), work)
    backup = Node_(kind, topo, n2, config(kind, cloud, n2, 1, [n1, watcher], 90, work, notify), work)
    probe = Probe(topo, watcher)
    out: list[dict[str, float]] = []
    sequences: set[str] = set()

    def first(match: Callable[[Req], bool]) -> Req | None:
        return next((r for r in cloud.requests() if match(r)), None)

    try:
        backup.start()
        master.start()
        for run in range(count):
            if topo.wait_for(lambda: cloud.owner() == cloud.target(0) and master.has_vip(cloud.vip), 20, 0.02) is None:
                raise RuntimeError(f"{kind}: node1 never owned the VIP\n{master.log[-3000:]}\n{backup.log[-3000:]}")
            time.sleep(0.5 + 0.1 * (run % 10) / 10)  # settled; kill at varying advert phases
            cloud.reset()
            t_kill = time.monotonic()
            master.kill()
            # watch the emulator's own record: polling through the API would load it
            if topo.wait_for(lambda: cloud.owner() == cloud.target(1), 15, 0.005) is None:
                raise RuntimeError(f"{kind}: the cloud never followed\n{backup.log[-3000:]}")
            time.sleep(0.3)  # let the verification land
            became = min(probe.adverts(str(n2.ip), t_kill, time.monotonic()), default=None)
            write = first(lambda r: r.op == cloud.write_op and r.ok and r.target == cloud.target(1))
            if became is None or write is None:
                raise RuntimeError(f"{kind}: no advert from node2 ({became}), or no write, after the kill: "
                                   f"{cloud.requests()}\n{backup.log[-3000:]}")
            call = next((r for r in cloud.requests() if r.started >= became), None)
            assert call is not None
            row = {"changed": write.ended - became, "write": write.ended - write.started,
                   "first_call": call.started - became}
            if kind != "keepalived":
                verify = next((r for r in cloud.requests() if r.op == cloud.read_op and r.started >= write.ended), None)
                assert verify is not None
                window = [r for r in cloud.requests() if r.started >= became and r.ended <= verify.ended]
                api = sum(r.ended - r.started for r in window)
                row.update(verified=verify.ended - became, overhead=verify.ended - became - api)
                sequences.add(" ".join(r.op for r in window))
            out.append(row)
            master.drop_vip(f"{cloud.vip}/32")
            master.start()  # comes back, preempts and claims: the next run starts from node1 again
    finally:
        master.kill()
        backup.kill()
        probe.close()
        master.drop_vip(f"{cloud.vip}/32")
        backup.drop_vip(f"{cloud.vip}/32")
    for seq in sorted(sequences):
        print(f"  {kind} requests between becoming master and verified: {seq}")
    return out


def line(label: str, values: list[float]) -> str:
    lo, med, p95 = stats(values)
    return f"  {label:<52} median {med:8.1f} ms   min {lo:8.1f}   p95 {p95:8.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cloud", choices=["aws", "hetzner"], required=True)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/cloud_failover.py needs root (network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cloud: Cloud = Aws() if args.cloud == "aws" else Hetzner()
    results: dict[str, list[dict[str, float]]] = {}
    secure = SecureDir("cloudvip-bench-")
    with tempfile.TemporaryDirectory(prefix="cloudvip-bench-") as tmp, Topology("cvcb", 2) as topo, ScriptUser():
        cloud.open(topo, Path(tmp))
        try:
            print(f"script tool: {cloud.script_tool}")
            watcher = topo.add_host("w", 60)
            notify = notify_wrapper(secure.path)
            for kind in ("cloudvip", "companion", "fifo", "keepalived"):
                results[kind] = runs(kind, topo, cloud, watcher, Path(tmp), args.runs, notify)
        finally:
            cloud.close()
            secure.close()

    k, c, m, f = results["keepalived"], results["cloudvip"], results["companion"], results["fifo"]
    tool = cloud.script_tool.split()[0]
    print(f"\nbecomes master -> {cloud.name} API, {args.runs} failovers each (VRRPv3 0.1 s, emulated API):")
    print(line(f"keepalived + notify_master {tool}: first API call", [r["first_call"] for r in k]))
    print(line("keepalived + cloudvip companion: first API call", [r["first_call"] for r in m]))
    print(line("keepalived notify_fifo + companion: first API call", [r["first_call"] for r in f]))
    print(line("cloudvip agent: first API call", [r["first_call"] for r in c]))
    print(line(f"keepalived + notify_master {tool}: changed", [r["changed"] for r in k]))
    print(line("keepalived + cloudvip companion: changed", [r["changed"] for r in m]))
    print(line("keepalived + cloudvip companion: verified", [r["verified"] for r in m]))
    print(line("keepalived notify_fifo + companion: changed", [r["changed"] for r in f]))
    print(line("cloudvip agent: changed", [r["changed"] for r in c]))
    print(line("cloudvip agent: verified", [r["verified"] for r in c]))
    print(line("cloudvip agent: own overhead (verified - API time)", [r["overhead"] for r in c]))
    print(line(f"{cloud.write_op} request in the emulator", [r["write"] for r in k + c + m + f]))
    print(f"\nratio companion/script, notify -> first API call: "
          f"{stats([r['first_call'] for r in m])[1] / stats([r['first_call'] for r in k])[1]:.3f}")
    med = {name: stats([r[key] for r in rows])[1]
           for name, rows, key in (("k", k, "changed"), ("c", c, "changed"), ("v", c, "verified"))}
    print(f"\nratio cloudvip/keepalived+script, to changed: {med['c'] / med['k']:.3f}; "
          f"cloudvip verified vs keepalived+script changed: {med['v'] / med['k']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
