"""The fault matrix, Azure (route_table, the local ARM with operations taking 0.3 s), 2 and 3
agents in namespaces: after each fault one VM is the route's next hop, its host carries the
address and no other live host does; settle time and API writes printed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.cloud_demo import Azure

from ..fault_harness import CLOUD_API_CASES, CloudWorld, cloud_world, matrix, run_cloud_case, timing

MODE = "route_table"


@pytest.fixture
def nodes() -> int:
    return 2


@pytest.fixture
def world(tmp_path: Path, nodes: int) -> Iterator[CloudWorld]:
    """Under CLOUDVIP_FAULT_PROFILE (fault_harness.PROFILE); operations take 0.3 s in the instant profile."""
    with cloud_world(lambda p: Azure(MODE, p), tmp_path, nodes, timing("azure")) as w:
        if w.cond.profile.name == "instant":
            w.cloud.world.emulator.op_seconds = 0.3  # type: ignore[attr-defined]
        yield w


@pytest.mark.parametrize(("case", "nodes"), matrix(CLOUD_API_CASES))
def test_fault_settles_with_one_owner(world: CloudWorld, case: str, nodes: int,
                                      record_property: Callable[[str, object], None]) -> None:
    run_cloud_case(world, "azure", case, record_property)
