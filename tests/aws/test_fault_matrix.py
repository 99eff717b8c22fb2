"""The fault matrix, AWS (secondary_ip, emulated EC2), agents in namespaces: after each fault
settles, exactly one instance owns the VIP in EC2, its host carries the address and no other
live host does. Each case (once; with 2 and 3 nodes under bench/fault_matrix.py) prints its
settle time and the API writes it cost."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.daemons import VIP, Daemon
from cloudvip_lab.ec2_emulator import DELAYS, FAULTS, Ec2Server, writes

from ..fault_harness import api_faults, common_faults, conditions, matrix, run_case, sole_owner
from .conftest import Ec2World
from .test_aws_netns import World, open_world


@pytest.fixture
def world(ec2: Ec2World, ec2_server: Ec2Server, tmp_path: Path, nodes: int) -> Iterator[World]:
    """Under CLOUDVIP_FAULT_PROFILE (fault_harness.PROFILE)."""
    with open_world(ec2, ec2_server, tmp_path, nodes, conditions("aws", ec2_server.port, tmp_path)) as w:
        yield w


def cloud_faults(w: World) -> dict[str, Callable[[Daemon, Daemon], object]]:
    return {
        **api_faults(w.site.forwarders[1], lambda s: DELAYS.__setitem__("AssignPrivateIpAddresses", s),
                     lambda: DELAYS.pop("AssignPrivateIpAddresses", None), w.cond.mdi),
        "API 5xx x3 + SIGKILL": lambda a, b: (FAULTS.__setitem__("AssignPrivateIpAddresses",
                                                                  [("InternalError", 500)] * 3), a.kill()),
        "API throttling x3 + SIGKILL": lambda a, b: (FAULTS.__setitem__(
            "AssignPrivateIpAddresses", [("RequestLimitExceeded", 503)] * 3), a.kill()),
    }


@pytest.mark.parametrize(("case", "nodes"), matrix(["API 5xx x3 + SIGKILL", "API throttling x3 + SIGKILL"]))
def test_fault_settles_with_one_owner(world: World, case: str, nodes: int,
                                      record_property: Callable[[str, object], None]) -> None:
    agents = world.cluster()
    fault = {**common_faults(world.topo), **cloud_faults(world)}[case]

    def owner() -> int | None:
        return sole_owner(world.owner_in_cloud(), agents, VIP)

    run_case("aws", case, fault, agents, owner,
             lambda: {world.ec2.enis.index(e): n for e, n in writes().items() if e in world.ec2.enis},
             record_property, world.cond)
