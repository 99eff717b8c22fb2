"""Two cloudvip agents in namespaces, each one VM of the local Compute Engine API: the alias IP
range (or the route) follows the VRRP master. Each namespace reaches the API and its own metadata
server on its own 127.0.0.1; the agents find their project, zone, name, NIC and credentials
there, as on GCE (lab/cloudvip_lab/gce_site.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from cloudvip_lab.cloud_demo import Gcp
from cloudvip_lab.gce_site import MODES
from cloudvip_lab.profiles import PROFILES

from ..fault_harness import CloudWorld, Conditions, cloud_world
from ..netns.conftest import needs_root

pytestmark = [needs_root, pytest.mark.netns]
ADVERT, RECONCILE = 0.1, 2.0


@pytest.fixture(params=MODES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CloudWorld]:
    cond = Conditions(PROFILES["instant"], ADVERT, RECONCILE)
    with cloud_world(lambda p: Gcp(request.param, p), tmp_path, 2, cond) as w:
        yield w


def test_killing_the_master_moves_the_vip_in_the_api(world: CloudWorld) -> None:
    a, b = world.cluster()
    mode = world.cloud.mode
    assert f"gcp {mode} on node1 in europe-west1-b (nic0, network default)" in a.log  # from the metadata server
    a.kill()
    assert world.topo.wait_for(lambda: world.holds(1, b), 10, 0.05), b.log
    writes = world.cloud.world.emulator.writes()  # type: ignore[attr-defined]
    # alias_ip: one remove on node1's NIC, one add on node2's; route: one delete, one insert
    assert writes == {"node1": 1, "node2": 1}, writes
    tokens = world.cloud.world.emulator.tokens  # type: ignore[attr-defined]
    assert tokens and not any(t in a.log + b.log for t in tokens)  # debug logging, and no credential


def test_a_change_behind_our_back_is_reclaimed_and_throttling_retried(world: CloudWorld) -> None:
    a, _ = world.cluster()
    mode = world.cloud.mode
    emu = world.cloud.world.emulator  # type: ignore[attr-defined]
    emu.faults["update_nic" if mode == "alias_ip" else "insert_route"] = [(429, "rateLimitExceeded")]
    with emu.lock:  # someone removes it in the console
        if mode == "alias_ip":
            emu.instances[("europe-west1-b", "node1")].nics[0].alias = []
        else:
            emu.routes.clear()
    assert world.topo.wait_for(lambda: world.holds(0, a), RECONCILE + 8, 0.05), a.log
    statuses = [c.status for c in emu.calls if c.op in ("update_nic", "insert_route")]
    assert statuses == [429, 200], statuses  # the throttled write was retried once, then done
    assert "re-asserting" in a.log


def test_the_gcp_lab_in_route_mode_runs_to_the_end() -> None:
    """`cloudvip lab --cloud gcp --mode route`: the route follows the election, the failover, a
    deletion behind the agents' back, preemption and the hand-over; the doctor passes first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cloudvip", "lab", "--cloud", "gcp", "--mode", "route",
                           "--profile", "instant"], capture_output=True, text=True, timeout=180)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    assert "Compute Engine: route 203.0.113.10/32 -> node2" in out and "lab OK" in out
    doctor = out[out.index("cloudvip doctor on node2"):out.index("node1 (the master) dies")]
    assert ", 0 failed" in doctor
    assert "cleaned up" in out
