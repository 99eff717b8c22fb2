"""vrrp_sync_group reactions: members follow each other to MASTER, BACKUP and FAULT."""

from __future__ import annotations

from ipaddress import IPv4Address

from cloudvip.state_machine import (GroupTransition, Router, RouterParams, Start, State, TimerFired,
                                    TrackChanged)
from cloudvip.sync_group import SyncGroup, group_state
from cloudvip.tracking import FAULT, OK


def router(name: str, vrid: int) -> Router:
    r = Router(RouterParams(name=name, vrid=vrid, priority=100, primary_address=IPv4Address("10.0.0.2"),
                            vips=(IPv4Address(f"10.0.{vrid}.100"),)))
    r.handle(Start(0.0))
    return r


def settle(group: SyncGroup, routers: dict[str, Router], changed: str, old: State) -> None:
    """Apply reactions until nothing changes, as the agent does through its notify hook."""
    queue = [(changed, old, routers[changed].state)]
    while queue:
        name, before, after = queue.pop(0)
        for member, event in group.reactions(1.0, name, before, after, routers):
            prev = routers[member].state
            routers[member].handle(event)
            if routers[member].state is not prev:
                queue.append((member, prev, routers[member].state))


def test_one_member_master_pulls_the_others() -> None:
    rs = {"A": router("A", 1), "B": router("B", 2)}
    g = SyncGroup("G", ["A", "B"])
    rs["A"].handle(TimerFired(rs["A"].deadline))
    settle(g, rs, "A", State.BACKUP)
    assert {r.state for r in rs.values()} == {State.MASTER}
    assert group_state(list(rs.values())) is State.MASTER


def test_master_falling_back_pushes_the_others_to_backup() -> None:
    rs = {"A": router("A", 1), "B": router("B", 2)}
    g = SyncGroup("G", ["A", "B"])
    for r in rs.values():
        r.handle(TimerFired(r.deadline))
    rs["A"].handle(GroupTransition(2.0, State.BACKUP, "test"))
    settle(g, rs, "A", State.MASTER)
    assert {r.state for r in rs.values()} == {State.BACKUP}


def test_fault_spreads_and_clears_together() -> None:
    rs = {"A": router("A", 1), "B": router("B", 2), "C": router("C", 3)}
    g = SyncGroup("G", ["A", "B", "C"])
    rs["B"].handle(TrackChanged(1.0, "script:x", FAULT))
    settle(g, rs, "B", State.BACKUP)
    assert {r.state for r in rs.values()} == {State.FAULT}
    assert group_state(list(rs.values())) is State.FAULT
    rs["B"].handle(TrackChanged(2.0, "script:x", OK))
    settle(g, rs, "B", State.FAULT)
    assert {r.state for r in rs.values()} == {State.BACKUP}


def test_group_transition_ignored_in_fault() -> None:
    r = router("A", 1)
    r.handle(TrackChanged(1.0, "x", FAULT))
    assert r.handle(GroupTransition(1.0, State.MASTER, "g")) == []
    assert r.state is State.FAULT
