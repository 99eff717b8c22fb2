"""vrrp_sync_group: member instances change state together, as keepalived's do. Pure.

One member becoming MASTER pulls the others to MASTER; a master falling back to BACKUP
pushes the others to BACKUP; a member in FAULT for its own reasons puts the others in
FAULT (through a `sync_group:NAME` tracker, so they recover when it does).
"""

from __future__ import annotations

from dataclasses import dataclass

from .state_machine import Event, GroupTransition, Router, State, TrackChanged
from .tracking import FAULT, OK

GROUP_TRACK_PREFIX = "sync_group:"


def own_fault(router: Router) -> bool:
    """Faulted by its own trackers, not merely following its group."""
    return any(t.fault for name, t in router.tracks.items() if not name.startswith(GROUP_TRACK_PREFIX))


def group_state(routers: list[Router]) -> State:
    states = {r.state for r in routers}
    if State.STOP in states:
        return State.STOP
    if State.FAULT in states:
        return State.FAULT
    if states == {State.MASTER}:
        return State.MASTER
    return State.BACKUP


@dataclass
class SyncGroup:
    name: str
    members: list[str]

    @property
    def track_name(self) -> str:
        return GROUP_TRACK_PREFIX + self.name

    def reactions(self, now: float, changed: str, old: State, new: State,
                  routers: dict[str, Router]) -> list[tuple[str, Event]]:
        """Events for the other members after `changed` went from `old` to `new`."""
        out: list[tuple[str, Event]] = []
        others = [m for m in self.members if m != changed and m in routers]
        why = f"sync group {self.name}: {changed} is {new.value}"
        if new is State.MASTER:
            out += [(m, GroupTransition(now, State.MASTER, why)) for m in others
                    if routers[m].state is State.BACKUP]
        elif new is State.BACKUP and old is State.MASTER:
            out += [(m, GroupTransition(now, State.BACKUP, why)) for m in others
                    if routers[m].state is State.MASTER]
        for m in self.members:
            if m not in routers:
                continue
            faulty_peer = next((o for o in self.members if o != m and o in routers and own_fault(routers[o])), None)
            want = FAULT if faulty_peer is not None else OK
            if routers[m].tracks.get(self.track_name, OK) != want:
                out.append((m, TrackChanged(now, self.track_name, want)))
        return out
