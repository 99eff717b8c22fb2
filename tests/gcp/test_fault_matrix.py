"""The fault matrix, Google Cloud (alias IP, the local Compute Engine API with operations taking
0.3 s), 2 and 3 agents in namespaces: after each fault one VM holds the alias IP range, its host
carries the address and no other live host does; settle time and API writes printed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.cloud_demo import Gcp

from ..fault_harness import CLOUD_API_CASES, CloudWorld, cloud_world, matrix, run_cloud_case, timing

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


@pytest.mark.parametrize(("case", "nodes"), matrix(CLOUD_API_CASES))
def test_fault_settles_with_one_owner(world: CloudWorld, case: str, nodes: int,
                                      record_property: Callable[[str, object], None]) -> None:
    emu = world.cloud.world.emulator  # type: ignore[attr-defined]
    run_cloud_case(world, "gcp", case, record_property,
                   writes_per_claim=2,  # remove from the holder, add to the claimant
                   # a stale claim's write carries the fingerprint read before it: refused, nothing to correct
                   stale_refused=lambda: any(c.op == "update_nic" and c.status == 412 for c in emu.calls))
