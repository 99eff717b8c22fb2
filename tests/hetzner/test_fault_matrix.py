"""The fault matrix, Hetzner (floating IP, the local Hetzner Cloud API with actions taking
0.3 s), 2 and 3 agents in namespaces: after each fault one server owns the floating IP, its host
carries the address and no other live host does; settle time and API writes printed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.daemons import Daemon
from cloudvip_lab.hcloud_emulator import HetznerWorld

from ..fault_harness import api_faults, common_faults, conditions, matrix, run_case, sole_owner
from .test_hetzner_netns import HetznerSite, World, open_world

MODE = "floating_ip"


@pytest.fixture
def world(hz: HetznerWorld, token_file: str, tmp_path: Path, nodes: int) -> Iterator[World]:
    """Under CLOUDVIP_FAULT_PROFILE (fault_harness.PROFILE); actions take 0.3 s in the instant profile."""
    hz.emulator.action_seconds = 0.3
    with open_world(hz, token_file, tmp_path, nodes, conditions("hetzner", hz.emulator.port, tmp_path), MODE) as w:
        yield w


def cloud_faults(w: World) -> dict[str, Callable[[Daemon, Daemon], object]]:
    emu = w.hz.emulator
    return {
        **api_faults(w.site.forwarders[1], lambda s: emu.delays.__setitem__("assign", s),
                     lambda: emu.delays.pop("assign", None), w.cond.mdi),
        "API 5xx x3 + SIGKILL": lambda a, b: (emu.faults.__setitem__("assign", [(503, "unavailable")] * 3),
                                             a.kill()),
        "API 429 x3 + SIGKILL": lambda a, b: (emu.faults.__setitem__("assign", [(429, "rate_limit_exceeded")] * 3),
                                             a.kill()),
    }


@pytest.mark.parametrize(("case", "nodes"), matrix(["API 5xx x3 + SIGKILL", "API 429 x3 + SIGKILL"]))
def test_fault_settles_with_one_owner(world: World, case: str, nodes: int,
                                      record_property: Callable[[str, object], None]) -> None:
    agents = world.cluster(MODE)
    fault = {**common_faults(world.topo), **cloud_faults(world)}[case]
    ids = [s.id for s in world.hz.servers]
    vip = HetznerSite.vip_for(MODE)

    def owner() -> int | None:
        held = world.hz.holder_ids(MODE)
        return sole_owner(ids.index(held[0]) if len(held) == 1 and held[0] in ids else None, agents, vip)

    run_case("hetzner", case, fault, agents, owner,
             lambda: {ids.index(s): n for s, n in world.hz.emulator.writes().items() if s in ids},
             record_property, world.cond)
