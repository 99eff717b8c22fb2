"""The fault matrix, Hetzner (floating IP, the local Hetzner Cloud API with actions taking
0.3 s), 2 and 3 agents in namespaces: after each fault one server owns the floating IP, its host
carries the address and no other live host does; settle time and API writes printed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.cloud_demo import Hetzner

from ..fault_harness import CLOUD_API_CASES, CloudWorld, cloud_world, matrix, run_cloud_case, timing

MODE = "floating_ip"


@pytest.fixture
def world(tmp_path: Path, nodes: int) -> Iterator[CloudWorld]:
    """Under CLOUDVIP_FAULT_PROFILE (fault_harness.PROFILE); actions take 0.3 s in the instant profile."""
    with cloud_world(lambda p: Hetzner(MODE, p), tmp_path, nodes, timing("hetzner")) as w:
        yield w


@pytest.mark.parametrize(("case", "nodes"), matrix(CLOUD_API_CASES))
def test_fault_settles_with_one_owner(world: CloudWorld, case: str, nodes: int,
                                      record_property: Callable[[str, object], None]) -> None:
    run_cloud_case(world, "hetzner", case, record_property)
