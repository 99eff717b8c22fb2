"""Shared by the fault matrices: the invariant, waiting for it to hold, and the faults that do
not depend on the cloud."""

from __future__ import annotations

import os
import signal
import time
from typing import Callable, Sequence

from cloudvip.lab.daemons import Daemon
from cloudvip.lab.netns_services import Forwarder
from cloudvip.lab.topology import Topology

SETTLE_LIMIT = 40.0


def sole_owner(cloud_owner: int | None, agents: Sequence[Daemon], vip: str) -> int | None:
    """The node the cloud sends the VIP to, if it alone (among live agents) carries it too."""
    if cloud_owner is None or not agents[cloud_owner].alive:
        return None
    carrying = [j for j, d in enumerate(agents) if d.alive and d.has_vip(vip)]
    return cloud_owner if carrying == [cloud_owner] else None


def settle(owner: Callable[[], int | None], agents: Sequence[Daemon], since: float,
           hold: float = 1.5) -> tuple[int, float]:
    """Wait until one owner holds for `hold` s in a row; (owner, seconds from `since`)."""
    stable_from: float | None = None
    first = -1
    deadline = since + SETTLE_LIMIT
    while time.monotonic() < deadline:
        who, now = owner(), time.monotonic()
        if who is None:
            stable_from = None
        elif stable_from is None or who != first:
            stable_from, first = now, who
        elif now - stable_from >= hold:
            return who, stable_from - since
        time.sleep(0.05)
    raise AssertionError(f"no single owner within {SETTLE_LIMIT} s:\n" + "\n".join(d.log[-3000:] for d in agents))


def freeze(d: Daemon, seconds: float) -> None:
    """The master's process (its event loop) stopped, then resumed."""
    for pid in d.pids():
        os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    for pid in d.pids():
        os.kill(pid, signal.SIGCONT)


def vrrp_loss(topo: Topology, percent: int, seconds: float) -> None:
    for n in topo.nodes:
        topo.set_loss(n, percent, vrrp_only=True)
    time.sleep(seconds)
    for n in topo.nodes:
        topo.set_loss(n, 0)


def common_faults(topo: Topology) -> dict[str, Callable[[Daemon, Daemon], object]]:
    """Faults of the master (a) and the network, whatever the cloud."""
    return {
        "SIGKILL master": lambda a, b: a.kill(),
        "SIGTERM master": lambda a, b: a.term(),
        "master link down": lambda a, b: topo.set_link(topo.nodes[0], False),
        "master frozen 10 s (SIGSTOP/SIGCONT)": lambda a, b: freeze(a, 10),
        "loss 10% for 10 s": lambda a, b: vrrp_loss(topo, 10, 10),
        "loss 30% for 10 s": lambda a, b: vrrp_loss(topo, 30, 10),
        "reload during failover": lambda a, b: (a.kill(), b.signal(signal.SIGHUP)),
    }


def api_faults(forwarder: Forwarder, slow_write: Callable[[], None]) -> dict[str, Callable[[Daemon, Daemon], object]]:
    """The faults of the cloud API that look the same whatever the cloud: `forwarder` is the
    backup's way to the API, `slow_write` makes the claiming call take 2 s."""
    def unreachable(a: Daemon, b: Daemon) -> None:
        forwarder.pause()
        a.kill()
        time.sleep(15)
        forwarder.resume()

    def restart_in_flight(a: Daemon, b: Daemon) -> None:
        """The backup's claim hangs in the slow API; its agent is restarted meanwhile."""
        slow_write()
        a.kill()
        time.sleep(0.8)  # master down detected (0.365 s), the claim under way
        b.kill()
        b.start()

    return {"API slow (2 s) + SIGKILL": lambda a, b: (slow_write(), a.kill()),
            "API unreachable 15 s + SIGKILL": unreachable,
            "restart while a move is in flight": restart_in_flight}


#: the cases both matrices run (each adds its API errors: 5xx, throttling)
CASES = ["SIGKILL master", "SIGTERM master", "master link down", "master frozen 10 s (SIGSTOP/SIGCONT)",
         "loss 10% for 10 s", "loss 30% for 10 s", "reload during failover", "API slow (2 s) + SIGKILL",
         "API unreachable 15 s + SIGKILL", "restart while a move is in flight"]


def claims_allowed(case: str, agents: Sequence[Daemon], log_marks: Sequence[int]) -> int:
    """API writes a case may cost without ping-pong: one per side for a single fault; under
    packet loss, one per VRRP election won (each flap is a real failover, and a claim)."""
    if not case.startswith("loss"):
        return 2
    won = sum(d.log[mark:].count("-> MASTER") for d, mark in zip(agents, log_marks, strict=True))
    return max(2, 2 * won)


def report(case: str, who: int, seconds: float, writes: dict[int, int]) -> str:
    spent = ", ".join(f"node{i + 1}: {n}" for i, n in sorted(writes.items()))
    return (f"\n{case}: settled {seconds:.2f} s after the fault ended, on node{who + 1}; "
            f"API writes {sum(writes.values())} ({spent})")
