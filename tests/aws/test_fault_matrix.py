"""The fault matrix, AWS (secondary_ip, emulated EC2), two agents in namespaces: after each fault
settles, exactly one instance owns the VIP in EC2, its host carries the address and no other
live host does. Each case prints its settle time and the API writes it cost; the partition case
(a claim per side at most) is in test_aws_netns.py."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from cloudvip.lab.daemons import VIP, Daemon
from cloudvip.lab.ec2_emulator import DELAYS, FAULTS, writes

from ..fault_harness import CASES, api_faults, claims_allowed, common_faults, report, settle, sole_owner
from .test_aws_netns import World, world  # noqa: F401 - the fixture


def cloud_faults(w: World) -> dict[str, Callable[[Daemon, Daemon], object]]:
    return {
        **api_faults(w.site.forwarders[1], lambda: DELAYS.__setitem__("AssignPrivateIpAddresses", 2.0)),
        "API 5xx x3 + SIGKILL": lambda a, b: (FAULTS.__setitem__("AssignPrivateIpAddresses",
                                                                  [("InternalError", 500)] * 3), a.kill()),
        "API throttling x3 + SIGKILL": lambda a, b: (FAULTS.__setitem__(
            "AssignPrivateIpAddresses", [("RequestLimitExceeded", 503)] * 3), a.kill()),
    }


@pytest.mark.parametrize("case", CASES + ["API 5xx x3 + SIGKILL", "API throttling x3 + SIGKILL"])
def test_fault_settles_with_one_owner(world: World, case: str) -> None:  # noqa: F811
    a, b = world.pair()
    fault = {**common_faults(world.topo), **cloud_faults(world)}[case]
    marks = [len(a.log), len(b.log)]
    fault(a, b)
    ended = time.monotonic()  # instantaneous faults end at once; the others after their duration

    def owner() -> int | None:
        enis = world.ec2.vip_enis(VIP)
        return sole_owner(world.ec2.enis.index(enis[0]) if len(enis) == 1 else None, (a, b), VIP)

    who, seconds = settle(owner, (a, b), ended)
    spent = {world.ec2.enis.index(e): n for e, n in writes().items() if e in world.ec2.enis}
    print(report(case, who, seconds, spent))
    assert sum(spent.values()) <= claims_allowed(case, (a, b), marks), (spent, a.log, b.log)  # no ping-pong
    if case.startswith(("SIGKILL", "SIGTERM", "master link", "API")):
        assert who == 1  # the backup took over
