"""Two cloudvip agents in namespaces, each one VM of the local Azure Resource Manager: the route
(or the secondary IP configuration) follows the VRRP master. Each namespace reaches ARM over TLS
and its own IMDS on its own 127.0.0.1; the agents find their subscription, resource group, VM,
NIC and managed identity's token there, as on an Azure VM (lab/cloudvip_lab/azure_site.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip_lab.azure_site import MODES
from cloudvip_lab.cloud_demo import Azure
from cloudvip_lab.profiles import PROFILES

from ..fault_harness import CloudWorld, Conditions, cloud_world
from ..netns.conftest import needs_root

pytestmark = [needs_root, pytest.mark.netns]


@pytest.fixture(params=MODES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CloudWorld]:
    with cloud_world(lambda p: Azure(request.param, p), tmp_path, 2, Conditions(PROFILES["instant"], 0.1, 2.0)) as w:
        w.cloud.world.emulator.op_seconds = 0.3  # type: ignore[attr-defined]  # long-running: polled
        yield w


def test_killing_the_master_moves_the_vip_in_arm(world: CloudWorld) -> None:
    a, b = world.cluster()
    mode = world.cloud.mode
    assert f"azure {mode} on VM node1, NIC node1-nic (198.51.100.11)" in a.log  # from IMDS and the NIC's MAC
    a.kill()
    assert world.topo.wait_for(lambda: world.holds(1, b), 15, 0.05), b.log
    writes = world.cloud.writes()
    # route_table: one route update naming node2; ip_config: a remove on node1's NIC, an add on node2's
    assert writes == ({1: 1} if mode == "route_table" else {0: 1, 1: 1}), writes
    tokens = world.cloud.world.emulator.tokens  # type: ignore[attr-defined]
    assert tokens and not any(t in a.log + b.log for t in tokens)  # debug logging, and no credential


def test_a_change_behind_our_back_is_reclaimed_and_throttling_retried(world: CloudWorld) -> None:
    a, _ = world.cluster()
    world.cloud.fail_writes("throttle", 1)
    world.cloud.remove_behind_the_back(0)
    assert world.topo.wait_for(lambda: world.holds(0, a), 2.0 + 10, 0.05), a.log
    op = "put_nic" if world.cloud.mode == "ip_config" else "put_route"
    statuses = [c.status for c in world.cloud.world.emulator.calls if c.op == op]  # type: ignore[attr-defined]
    # the throttled write was retried once, then done (201: the route created again)
    assert statuses in ([429, 200], [429, 201]), statuses
    assert "re-asserting" in a.log, a.log[-3000:]


def test_the_azure_lab_runs_to_the_end() -> None:
    """`cloudvip lab --cloud azure --profile instant`: the route follows the election, the
    failover, a deletion behind the agents' back, preemption and the hand-over; doctor first."""
    done = subprocess.run([sys.executable, "-m", "cloudvip", "lab", "--cloud", "azure", "--profile", "instant"],
                          capture_output=True, text=True, timeout=180)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    assert "Azure: route 203.0.113.10/32 -> VirtualAppliance node2" in out and "lab OK" in out
    doctor = out[out.index("cloudvip doctor on node2"):out.index("node1 (the master) dies")]
    assert ", 0 failed" in doctor
    assert "cleaned up" in out
