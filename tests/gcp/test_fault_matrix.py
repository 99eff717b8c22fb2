"""The fault matrix, Google Cloud (alias IP, the local Compute Engine API with operations taking
0.3 s), 2 and 3 agents in namespaces: after each fault one VM holds the alias IP range, its host
carries the address and no other live host does; settle time and API writes printed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.daemons import Daemon
from cloudvip_lab.gce_site import GceSite

from ..fault_harness import api_faults, common_faults, matrix, run_case, sole_owner
from .test_gcp_netns import World, open_world

MODE = "alias_ip"


@pytest.fixture
def nodes() -> int:
    return 2


@pytest.fixture
def world(tmp_path: Path, nodes: int) -> Iterator[World]:
    """Under CLOUDVIP_FAULT_PROFILE (fault_harness.PROFILE); operations take 0.3 s in the instant profile."""
    with open_world(tmp_path, nodes, MODE, matrix=True) as w:
        if w.cond.profile.name == "instant":
            w.site.world.emulator.op_seconds = 0.3
        yield w


def cloud_faults(w: World) -> dict[str, Callable[[Daemon, Daemon], object]]:
    emu = w.site.world.emulator
    return {
        **api_faults(w.site.forwarders[1], lambda s: emu.delays.__setitem__("update_nic", s),
                     lambda: emu.delays.pop("update_nic", None), w.cond.mdi),
        "API 5xx x3 + SIGKILL": lambda a, b: (emu.faults.__setitem__("update_nic", [(503, "backendError")] * 3),
                                             a.kill()),
        "API 429 x3 + SIGKILL": lambda a, b: (emu.faults.__setitem__("update_nic", [(429, "rateLimitExceeded")] * 3),
                                             a.kill()),
    }


@pytest.mark.parametrize(("case", "nodes"), matrix(["API 5xx x3 + SIGKILL", "API 429 x3 + SIGKILL"]))
def test_fault_settles_with_one_owner(world: World, case: str, nodes: int,
                                      record_property: Callable[[str, object], None]) -> None:
    agents = world.cluster(MODE)
    fault = {**common_faults(world.topo), **cloud_faults(world)}[case]
    names = [i.name for i in world.site.world.instances]
    vip = GceSite.vip_for(MODE)

    def owner() -> int | None:
        held = world.site.world.holders(MODE, vip)
        return sole_owner(names.index(held[0]) if len(held) == 1 and held[0] in names else None, agents, vip)

    run_case("gcp", case, fault, agents, owner,
             lambda: {names.index(n): c for n, c in world.site.world.emulator.writes().items() if n in names},
             record_property, world.cond, writes_per_claim=2,  # remove from the holder, add to the claimant
             # a stale claim's write carries the fingerprint read before it: refused, nothing to correct
             stale_refused=lambda: any(c.op == "update_nic" and c.status == 412
                                       for c in world.site.world.emulator.calls))
