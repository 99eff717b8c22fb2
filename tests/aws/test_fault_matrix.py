"""The fault matrix, AWS (secondary_ip, emulated EC2), two agents in namespaces: after each fault
settles, exactly one instance owns the VIP in EC2, its host carries the address and no other
live host does. Each case prints its settle time and the API writes it cost; the partition case
(a claim per side at most) is in test_aws_netns.py."""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

import pytest

from cloudvip.lab.daemons import VIP, Daemon
from cloudvip.lab.ec2_emulator import DELAYS, FAULTS, writes

from .test_aws_netns import World, world  # noqa: F401 - the fixture

SETTLE_LIMIT = 40.0


def owner(w: World, agents: tuple[Daemon, Daemon]) -> int | None:
    """The node that alone owns the VIP in EC2 and alone (among live agents) carries it."""
    enis = w.ec2.vip_enis(VIP)
    if len(enis) != 1:
        return None
    i = w.ec2.enis.index(enis[0])
    carrying = [j for j, d in enumerate(agents) if d.alive and d.has_vip()]
    return i if carrying == [i] and agents[i].alive else None


def settle(w: World, agents: tuple[Daemon, Daemon], since: float, hold: float = 1.5) -> tuple[int, float]:
    """Wait until the invariant holds for `hold` s in a row; (owner, seconds from `since`)."""
    stable_from: float | None = None
    deadline = since + SETTLE_LIMIT
    while time.monotonic() < deadline:
        who = owner(w, agents)
        now = time.monotonic()
        if who is None:
            stable_from = None
        elif stable_from is None:
            stable_from, first = now, who
        elif who != first:
            stable_from, first = now, who
        elif now - stable_from >= hold:
            return who, stable_from - since
        time.sleep(0.05)
    raise AssertionError(f"no single owner within {SETTLE_LIMIT} s:\n{agents[0].log[-3000:]}\n{agents[1].log[-3000:]}")


def freeze(d: Daemon, seconds: float) -> None:
    """The master's process (its event loop) stopped, then resumed."""
    for pid in d.pids():
        os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    for pid in d.pids():
        os.kill(pid, signal.SIGCONT)


def during(seconds: float, on: Callable[[], None], off: Callable[[], None]) -> None:
    on()
    time.sleep(seconds)
    off()


def restart_in_flight(w: World, b: Daemon) -> None:
    """The backup's claim hangs in a slow API; its agent is restarted meanwhile."""
    DELAYS["AssignPrivateIpAddresses"] = 2.0
    time.sleep(0.8)  # master down detected (0.365 s), the claim under way
    b.kill()
    b.start()


FAULTS_BY_CASE: dict[str, Callable[[World, Daemon, Daemon], None]] = {
    "SIGKILL master": lambda w, a, b: a.kill(),
    "SIGTERM master": lambda w, a, b: (a.term(), None)[1],
    "master link down": lambda w, a, b: w.topo.set_link(w.topo.nodes[0], False),
    "master frozen 10 s (SIGSTOP/SIGCONT)": lambda w, a, b: freeze(a, 10),
    "loss 10% for 10 s": lambda w, a, b: during(10, lambda: [w.topo.set_loss(n, 10, vrrp_only=True)
                                                            for n in w.topo.nodes],
                                                lambda: [w.topo.set_loss(n, 0) for n in w.topo.nodes]),
    "loss 30% for 10 s": lambda w, a, b: during(10, lambda: [w.topo.set_loss(n, 30, vrrp_only=True)
                                                            for n in w.topo.nodes],
                                                lambda: [w.topo.set_loss(n, 0) for n in w.topo.nodes]),
    "API slow (2 s) + SIGKILL": lambda w, a, b: (DELAYS.__setitem__("AssignPrivateIpAddresses", 2.0), a.kill()),
    "API 5xx x3 + SIGKILL": lambda w, a, b: (FAULTS.__setitem__("AssignPrivateIpAddresses",
                                                                  [("InternalError", 500)] * 3), a.kill()),
    "API throttling x3 + SIGKILL": lambda w, a, b: (FAULTS.__setitem__(
        "AssignPrivateIpAddresses", [("RequestLimitExceeded", 503)] * 3), a.kill()),
    "API unreachable 15 s + SIGKILL": lambda w, a, b: (w.site.forwarders[1].pause(), a.kill(), time.sleep(15),
                                                       w.site.forwarders[1].resume()),
    "restart while a move is in flight": lambda w, a, b: (a.kill(), restart_in_flight(w, b)),
    "reload during failover": lambda w, a, b: (a.kill(), b.signal(signal.SIGHUP)),
}


@pytest.mark.parametrize("case", list(FAULTS_BY_CASE))
def test_fault_settles_with_one_owner(world: World, case: str) -> None:  # noqa: F811
    a, b = world.pair()
    FAULTS_BY_CASE[case](world, a, b)
    ended = time.monotonic()  # instantaneous faults end at once; the others after their duration
    who, seconds = settle(world, (a, b), ended)
    spent = writes()
    print(f"\n{case}: settled {seconds:.2f} s after the fault ended, on node{who + 1}; "
          f"API writes {sum(spent.values())} "
          f"({', '.join(f'node{world.ec2.enis.index(e) + 1}: {n}' for e, n in sorted(spent.items()))})")
    assert sum(spent.values()) <= 2, spent  # at most a claim per side: no ping-pong
    if case.startswith(("SIGKILL", "SIGTERM", "master link", "API")):
        assert who == 1  # the backup took over
