"""Two cloudvip agents in namespaces, each one server of the local Hetzner Cloud API: the
floating IP (or alias IP) follows the VRRP master in the emulator. Each namespace reaches the
API and its own metadata service on its own 127.0.0.1 (lab/cloudvip_lab/hetzner_site.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from cloudvip_lab.cloud_demo import Hetzner
from cloudvip_lab.hcloud_emulator import TOKEN, HetznerWorld
from cloudvip_lab.hetzner_site import MODES, HetznerSite
from cloudvip_lab.profiles import PROFILES

from ..fault_harness import CloudWorld, Conditions, cloud_world
from ..netns.conftest import needs_root

pytestmark = [needs_root, pytest.mark.netns]


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CloudWorld]:
    """Two agents' namespaces on the Hetzner API, instant, advert 0.1 s (mode: floating_ip unless
    parametrized indirectly)."""
    mode = getattr(request, "param", "floating_ip")
    with cloud_world(lambda p: Hetzner(mode, p), tmp_path, 2, Conditions(PROFILES["instant"], 0.1, 5.0)) as w:
        yield w


def hz(world: CloudWorld) -> HetznerWorld:
    return world.cloud.world  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("world", MODES, indirect=True)
def test_killing_the_master_moves_the_vip_in_the_api(world: CloudWorld) -> None:
    a, b = world.cluster()
    mode, servers = world.cloud.mode, hz(world).servers
    assert f"hetzner {mode} on server {servers[0].id}" in a.log  # found through the metadata service
    a.kill()
    assert world.topo.wait_for(lambda: world.holds(1, b), 10, 0.05), b.log
    assert TOKEN not in a.log + b.log  # debug logging, and still no token
    writes = hz(world).emulator.writes()
    # floating IP: one assign; alias IP: shrink the old holder's list, then grow ours
    assert writes == ({servers[1].id: 1} if mode == "floating_ip" else {servers[0].id: 1, servers[1].id: 1}), writes


def test_429_and_5xx_are_retried(world: CloudWorld) -> None:
    a, b = world.cluster()
    hz(world).emulator.faults["assign"] = [(429, "rate_limit_exceeded"), (503, "unavailable"), (502, "bad_gateway")]
    killed = time.monotonic()
    a.kill()
    assert world.topo.wait_for(lambda: world.holds(1, b), 15, 0.05), b.log
    took = time.monotonic() - killed
    assert hz(world).emulator.faults["assign"] == []
    # hcloud retries the 429 and the 502 itself (after a second), the mover the 503
    assert b.log.count("take failed (attempt") == 1 and "unavailable" in b.log, b.log
    assert took >= 1.0  # the 429 made it wait at least the second a request takes to come back
    assert hz(world).emulator.writes() == {hz(world).servers[1].id: 1}


def test_a_floating_ip_reassigned_behind_the_agents_back_is_reclaimed(world: CloudWorld) -> None:
    a, b = world.cluster()
    stranger = hz(world).emulator.add_server("stranger", "198.51.100.99")
    hz(world).floating_ip.server = stranger.id  # someone assigned it elsewhere
    assert world.topo.wait_for(lambda: world.holds(0, a), 10, 0.05), a.log
    assert f"the VIP points to {stranger.id}, not a peer, in the cloud: re-asserting" in a.log
    assert hz(world).emulator.writes() == {hz(world).servers[0].id: 1}
    assert not b.has_vip(HetznerSite.vip_for("floating_ip"))


def test_sigterm_releases_the_host_address_while_an_api_call_hangs(
        world: CloudWorld, record_property: Callable[[str, object], None]) -> None:
    """The API accepts and never answers; the master is reading it (a lower-priority advert made
    it check ownership) when SIGTERM comes: it drops the VIP from the host at once and exits 0
    well within the unit's TimeoutStopSec (20 s), whatever the hung call does."""
    a, b = world.cluster()
    b.kill()
    forwarder = world.cloud.forwarder(0)
    forwarder.hang()
    a_node, b_node = world.topo.nodes
    subprocess.run(world.topo.exec_args(b_node, sys.executable, "-m", "cloudvip_lab.attacker", str(a_node.ip),
                                        "advert", "--count", "1", "--src", str(b_node.ip), "--version", "3",
                                        "--priority", "50", "--address", HetznerSite.vip_for("floating_ip")),
                   check=True, capture_output=True, timeout=30)
    assert world.topo.wait_for(lambda: bool(forwarder.held), 5, 0.05), a.log  # its ownership read hangs
    assert a.has_vip(HetznerSite.vip_for("floating_ip"))
    stopped = time.monotonic()
    assert a.term(timeout=15) == 0, a.log
    took = time.monotonic() - stopped
    assert took < 10, a.log
    record_property("figure", f"hung API call at SIGTERM: exit 0 and the host address gone {took:.2f} s after "
                              "the signal")
    assert not a.has_vip(HetznerSite.vip_for("floating_ip")), a.log
    assert re.search(r"abandoning the .*announce.* under way to release now", a.log), a.log
