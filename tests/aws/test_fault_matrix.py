"""The fault matrix, AWS (secondary_ip, emulated EC2), agents in namespaces: after each fault
settles, exactly one instance owns the VIP in EC2, its host carries the address and no other
live host does. Each case (once; with 2 and 3 nodes under bench/fault_matrix.py) prints its
settle time and the API writes it cost."""

from __future__ import annotations

from typing import Callable

import pytest

from cloudvip_lab.daemons import VIP, Daemon
from cloudvip_lab.ec2_emulator import DELAYS, FAULTS, writes

from ..fault_harness import api_faults, common_faults, matrix, run_case, sole_owner
from .test_aws_netns import World, world  # noqa: F401 - the fixture


def cloud_faults(w: World) -> dict[str, Callable[[Daemon, Daemon], object]]:
    return {
        **api_faults(w.site.forwarders[1], lambda s: DELAYS.__setitem__("AssignPrivateIpAddresses", s),
                     lambda: DELAYS.pop("AssignPrivateIpAddresses", None)),
        "API 5xx x3 + SIGKILL": lambda a, b: (FAULTS.__setitem__("AssignPrivateIpAddresses",
                                                                  [("InternalError", 500)] * 3), a.kill()),
        "API throttling x3 + SIGKILL": lambda a, b: (FAULTS.__setitem__(
            "AssignPrivateIpAddresses", [("RequestLimitExceeded", 503)] * 3), a.kill()),
    }


@pytest.mark.parametrize(("case", "nodes"), matrix(["API 5xx x3 + SIGKILL", "API throttling x3 + SIGKILL"]))
def test_fault_settles_with_one_owner(world: World, case: str, nodes: int,  # noqa: F811
                                      record_property: Callable[[str, object], None]) -> None:
    agents = world.cluster()
    fault = {**common_faults(world.topo), **cloud_faults(world)}[case]

    def owner() -> int | None:
        enis = world.ec2.vip_enis(VIP)
        return sole_owner(world.ec2.enis.index(enis[0]) if len(enis) == 1 else None, agents, VIP)

    run_case("aws", case, fault, agents, owner,
             lambda: {world.ec2.enis.index(e): n for e, n in writes().items() if e in world.ec2.enis},
             record_property)
