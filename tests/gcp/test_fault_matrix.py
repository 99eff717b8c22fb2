"""The fault matrix, Google Cloud (alias IP, the local Compute Engine API with operations taking
0.3 s), 2 and 3 agents in namespaces: after each fault one VM holds the alias IP range, its host
carries the address and no other live host does; settle time and API writes printed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.cloud_demo import Gcp
from cloudvip_lab.daemons import Daemon

from ..fault_harness import CloudWorld, api_faults, cloud_world, common_faults, matrix, run_case, timing

MODE = "alias_ip"


@pytest.fixture
def nodes() -> int:
    return 2


@pytest.fixture
def world(tmp_path: Path, nodes: int) -> Iterator[CloudWorld]:
    """Under CLOUDVIP_FAULT_PROFILE (fault_harness.PROFILE); operations take 0.3 s in the instant profile."""
    with cloud_world(lambda p: Gcp(MODE, p), tmp_path, nodes, timing("gcp")) as w:
        if w.cond.profile.name == "instant":
            w.cloud.world.emulator.op_seconds = 0.3  # type: ignore[attr-defined]
        yield w


def cloud_faults(w: CloudWorld) -> dict[str, Callable[[Daemon, Daemon], object]]:
    cloud = w.cloud
    return {
        **api_faults(cloud.forwarder(1), cloud.slow_writes, lambda: cloud.slow_writes(0), w.cond.mdi),
        "API 5xx x3 + SIGKILL": lambda a, b: (cloud.fail_writes("5xx", 3), a.kill()),
        "API 429 x3 + SIGKILL": lambda a, b: (cloud.fail_writes("throttle", 3), a.kill()),
    }


@pytest.mark.parametrize(("case", "nodes"), matrix(["API 5xx x3 + SIGKILL", "API 429 x3 + SIGKILL"]))
def test_fault_settles_with_one_owner(world: CloudWorld, case: str, nodes: int,
                                      record_property: Callable[[str, object], None]) -> None:
    agents = world.cluster()
    fault = {**common_faults(world.topo), **cloud_faults(world)}[case]
    emu = world.cloud.world.emulator  # type: ignore[attr-defined]
    run_case("gcp", case, fault, agents, world.owner, world.cloud.writes, record_property, world.cond,
             writes_per_claim=2,  # remove from the holder, add to the claimant
             # a stale claim's write carries the fingerprint read before it: refused, nothing to correct
             stale_refused=lambda: any(c.op == "update_nic" and c.status == 412 for c in emu.calls))
