"""The lab's cloud data plane: a client reaches the VIP only where the cloud's state sends it,
`propagation` seconds after that state changed, and only if that node carries the address;
and `cloudvip lab --cloud ...` (the realistic profile) prints the client's outage per failover."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from typing import Callable, Iterator

import pytest

from cloudvip_lab.fabric import Client, Fabric, Route
from cloudvip_lab.topology import Topology, ip

from .conftest import needs_root

pytestmark = [needs_root]
VIP = "198.51.100.100"


def answered_by(client: Client, since: float, until: float) -> set[str | None]:
    return {who for t, who in client.served_by(since) if t <= until}


@contextlib.contextmanager
def data_plane(vip: str, propagation: float, route: Callable[[], Route],
               on_host: bool = True) -> Iterator[tuple[Topology, Fabric, Client]]:
    """Two nodes, the cloud's router following `route`, a client behind it."""
    with Topology("cvdp", 2) as topo:
        fabric = Fabric(topo, vip, propagation, route, on_host)
        client = Client(fabric)
        try:
            yield topo, fabric, client
        finally:
            client.close()
            fabric.close()


def test_traffic_goes_only_to_the_clouds_owner_and_only_after_propagation() -> None:
    cloud = {"route": Route(None)}
    with data_plane(VIP, 0.5, lambda: cloud["route"]) as (topo, fabric, client):
        n1, n2 = topo.nodes
        ip("-n", n1.name, "addr", "add", f"{VIP}/24", "dev", "eth0")  # node1 carries it; the cloud: nobody
        time.sleep(0.3)
        assert answered_by(client, 0, time.monotonic()) == {None}  # no ARP shortcut to node1

        cloud["route"] = Route(0)
        changed = time.monotonic()
        assert topo.wait_for(lambda: client.last_answer() is not None, 3) is not None
        first = next(t for t, who in client.served_by(changed) if who == "node1")
        assert 0.45 <= first - changed < 1.0  # the data plane followed the cloud after propagation

        cloud["route"] = Route(1)  # the cloud sends it to node2, which does not carry it yet
        changed = time.monotonic()
        time.sleep(1.0)
        late = answered_by(client, changed + 0.6, time.monotonic())
        assert late == {None}  # dropped at node2; node1 still carries it and gets nothing
        text = "\n".join(e for _, e in fabric.take_events())
        assert "node1 carries 198.51.100.100 but the cloud sends it elsewhere: it gets no traffic" in text
        assert "the cloud sends 198.51.100.100 to node2, which does not carry it: dropped there" in text

        ip("-n", n2.name, "addr", "add", f"{VIP}/24", "dev", "eth0")
        fixed = time.monotonic()
        time.sleep(0.3)
        assert answered_by(client, fixed + 0.1, time.monotonic()) == {"node2"}


def test_an_elastic_ip_is_translated_to_the_associated_node() -> None:
    eip = "203.0.113.50"
    cloud = {"route": Route(1, translate=True)}
    with data_plane(eip, 0.0, lambda: cloud["route"], on_host=False) as (topo, _, client):
        assert topo.wait_for(lambda: client.last_answer() is not None, 3) is not None
        assert client.last_answer()[1] == "node2"  # type: ignore[index]
        cloud["route"] = Route(0, translate=True)
        moved = time.monotonic()
        time.sleep(0.3)
        assert answered_by(client, moved + 0.1, time.monotonic()) == {"node1"}


def test_the_realistic_lab_prints_the_clients_outage_per_failover() -> None:
    """Once in CI, on AWS (38 s): the data plane and the client's outage are the lab's, not the
    cloud's; `cloudvip lab --cloud hetzner|gcp|azure` and bench/cloud_failover.py run the others."""
    pytest.importorskip("moto")
    done = subprocess.run([sys.executable, "-m", "cloudvip", "lab", "--cloud", "aws"], capture_output=True,
                          text=True, timeout=240)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    assert "profile realistic" in out and "over HTTPS (lab CA)" in out
    outages = re.findall(r"client outage: (\d+\.\d+) s \(detection (-?\d+\.\d+), API (\d+\.\d+), "
                         r"propagation (\d+\.\d+)\)", out)
    assert len(outages) == 3  # the failover, the preemption, the handover
    for total, detection, api, propagation in outages:
        assert abs(float(total) - float(detection) - float(api) - float(propagation)) < 0.005
        assert float(propagation) >= 0.9  # the client waited for the data plane, not for ARP
    failover = out[out.index("node1 (the master) dies"):out.index("someone removes")]
    assert "API writes: node2 1" in failover  # one write, although the reads lag it
    assert "split brain" not in out
    assert "cleaned up" in out
    # the doctor ran on the backup before the failover: it heard the master and found nothing broken
    doctor = out[out.index("cloudvip doctor on node2"):out.index("node1 (the master) dies")]
    assert "heard 198.51.100.11 (a configured peer)" in doctor and ", 0 failed" in doctor
    assert "allowed (policy simulation" in doctor
