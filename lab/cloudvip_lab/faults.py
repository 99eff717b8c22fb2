"""Faults for the lab's agents and the invariant they are judged by, shared by the fault
matrices (tests/) and the soak (bench/soak.py): after settling, exactly one node owns the VIP in
the cloud, its host carries the address and no other live host does."""

from __future__ import annotations

import os
import signal
import time
from typing import Callable, Sequence

from .daemons import Daemon
from .topology import Node, Topology

SETTLE_LIMIT = 40.0


class NoSingleOwner(AssertionError):
    """The invariant did not come back within SETTLE_LIMIT."""


def sole_owner(cloud_owner: int | None, agents: Sequence[Daemon], vip: str) -> int | None:
    """The node the cloud sends the VIP to, if it alone (among live agents) carries it too."""
    if cloud_owner is None or not agents[cloud_owner].alive:
        return None
    carrying = [j for j, d in enumerate(agents) if d.alive and d.has_vip(vip)]
    return cloud_owner if carrying == [cloud_owner] else None


def settle(owner: Callable[[], int | None], agents: Sequence[Daemon], since: float,
           hold: float = 1.5, limit: float = SETTLE_LIMIT) -> tuple[int, float]:
    """Wait until one owner holds for `hold` s in a row; (owner, seconds from `since`)."""
    stable_from: float | None = None
    first = -1
    deadline = since + limit
    while time.monotonic() < deadline:
        who, now = owner(), time.monotonic()
        if who is None:
            stable_from = None
        elif stable_from is None or who != first:
            stable_from, first = now, who
        elif now - stable_from >= hold:
            return who, stable_from - since
        time.sleep(0.05)
    raise NoSingleOwner(f"no single owner within {limit} s:\n" + "\n".join(d.log[-3000:] for d in agents))


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def freeze(d: Daemon, seconds: float) -> None:
    """The master's process (its event loop) stopped, then resumed."""
    for pid in d.pids():
        os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    for pid in d.pids():
        os.kill(pid, signal.SIGCONT)


def on_every_node(topo: Topology, start: Callable[[Node], object], stop: Callable[[Node], object],
                  seconds: float) -> None:
    """A network fault on every node's outgoing VRRP for `seconds`, then gone."""
    try:
        for n in topo.nodes:
            start(n)
        time.sleep(seconds)
    finally:
        for n in topo.nodes:
            stop(n)


def vrrp_loss(topo: Topology, percent: int, seconds: float) -> None:
    on_every_node(topo, lambda n: topo.set_loss(n, percent, vrrp_only=True), lambda n: topo.set_loss(n, 0), seconds)


def vrrp_delay(topo: Topology, ms: float, jitter: float, seconds: float) -> None:
    on_every_node(topo, lambda n: topo.set_delay(n, ms, jitter), lambda n: topo.set_delay(n, 0), seconds)


def vrrp_partition(topo: Topology, seconds: float) -> None:
    """No node hears another's adverts; everything else (the cloud API) still flows."""
    on_every_node(topo, lambda n: topo.partition_vrrp(n, True), lambda n: topo.partition_vrrp(n, False), seconds)
