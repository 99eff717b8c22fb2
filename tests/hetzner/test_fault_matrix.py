"""The fault matrix, Hetzner (floating IP, the local Hetzner Cloud API with actions taking
0.3 s), two agents in namespaces: after each fault one server owns the floating IP, its host
carries the address and no other live host does; settle time and API writes printed."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from cloudvip.lab.daemons import Daemon

from ..fault_harness import CASES, api_faults, claims_allowed, common_faults, report, settle, sole_owner
from .test_hetzner_netns import HetznerSite, World, world  # noqa: F401 - the fixture

MODE = "floating_ip"


def cloud_faults(w: World) -> dict[str, Callable[[Daemon, Daemon], object]]:
    emu = w.hz.emulator
    return {
        **api_faults(w.site.forwarders[1], lambda: emu.delays.__setitem__("assign", 2.0)),
        "API 5xx x3 + SIGKILL": lambda a, b: (emu.faults.__setitem__("assign", [(503, "unavailable")] * 3),
                                             a.kill()),
        "API 429 x3 + SIGKILL": lambda a, b: (emu.faults.__setitem__("assign", [(429, "rate_limit_exceeded")] * 3),
                                             a.kill()),
    }


@pytest.mark.parametrize("case", CASES + ["API 5xx x3 + SIGKILL", "API 429 x3 + SIGKILL"])
def test_fault_settles_with_one_owner(world: World, case: str) -> None:  # noqa: F811
    world.hz.emulator.action_seconds = 0.3
    a, b = world.pair(MODE)
    fault = {**common_faults(world.topo), **cloud_faults(world)}[case]
    marks = [len(a.log), len(b.log)]
    fault(a, b)
    ended = time.monotonic()
    ids = [s.id for s in world.hz.servers]
    vip = HetznerSite.vip_for(MODE)

    def owner() -> int | None:
        held = world.hz.holder_ids(MODE)
        return sole_owner(ids.index(held[0]) if len(held) == 1 and held[0] in ids else None, (a, b), vip)

    who, seconds = settle(owner, (a, b), ended)
    spent = {ids.index(s): n for s, n in world.hz.emulator.writes().items() if s in ids}
    print(report(case, who, seconds, spent))
    assert sum(spent.values()) <= claims_allowed(case, (a, b), marks), (spent, a.log, b.log)  # no ping-pong
    if case.startswith(("SIGKILL", "SIGTERM", "master link", "API")):
        assert who == 1
