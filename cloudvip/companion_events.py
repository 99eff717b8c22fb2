"""What keepalived tells a companion, and where the companion listens. Pure and light: the
`cloudvip notify` client imports only this (no SDK, no config parsing) on its fast path.

keepalived's forms, all accepted:
- generic `notify` script: argv TYPE NAME STATE PRIORITY, e.g. `INSTANCE VI_1 MASTER 100`;
- its notify_fifo: one line each, `INSTANCE "VI_1" MASTER 100` (the name quoted);
- `notify_master "cloudvip notify master VI_1"` (keepalived passes specific scripts nothing,
  so the line names the state and the instance).
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from enum import Enum


class State(str, Enum):
    """The states and events keepalived names in its notify calls and fifo lines (not the state
    machine's own enum: DELETED and the events are keepalived's, and this module must stay free
    of heavier imports)."""

    MASTER = "MASTER"
    BACKUP = "BACKUP"
    FAULT = "FAULT"
    STOP = "STOP"
    DELETED = "DELETED"
    #: a master heard a lower priority: after a partition, the other node may have claimed the VIP
    MASTER_RX_LOWER_PRI = "MASTER_RX_LOWER_PRI"
    #: notify_priority_changes: no transition
    MASTER_PRIORITY = "MASTER_PRIORITY"
    BACKUP_PRIORITY = "BACKUP_PRIORITY"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # INSTANCE or GROUP
    name: str
    state: State
    priority: int | None = None

    def words(self) -> str:
        """The event as one line (the fifo's form), for the socket."""
        prio = f" {self.priority}" if self.priority is not None else ""
        return f"{self.kind} {shlex.quote(self.name)} {self.state.value}{prio}"


class EventError(ValueError):
    pass


def parse_event(args: list[str]) -> Event:
    """An event from keepalived's argv (or a fifo line split with shlex); EventError if not one."""
    if len(args) in (3, 4) and args[0].upper() in ("INSTANCE", "GROUP"):
        kind, name, state = args[0].upper(), args[1], args[2].upper()
        prio = args[3] if len(args) == 4 else None
    elif len(args) == 2 and args[0].upper() in State.__members__:
        kind, name, state, prio = "INSTANCE", args[1], args[0].upper(), None
    else:
        raise EventError(f"not a keepalived event: {' '.join(args)!r} (expected TYPE NAME STATE [PRIORITY], "
                         "as keepalived's notify passes, or STATE NAME, e.g. master VI_1)")
    if state not in State.__members__:
        raise EventError(f"unknown state {state!r} (expected {', '.join(State.__members__)})")
    if prio is not None and not prio.isdigit():
        raise EventError(f"priority {prio!r} is not a number")
    return Event(kind, name, State[state], int(prio) if prio is not None else None)


def parse_line(line: str) -> Event:
    try:
        return parse_event(shlex.split(line))
    except ValueError as exc:  # shlex: unbalanced quotes
        raise EventError(str(exc)) from None


#: where each role's sockets live: the agent's control sockets root-only, always; the
#: companion's apart, as keepalived's script users may have to reach them (the directory is
#: then searchable by all, the sockets checked by uid)
RUN_DIRS = {"agent": "/run/cloudvip", "companion": "/run/cloudvip-companion"}


def socket_path(config: str, role: str = "companion", config_id: str | None = None,
                run_dir: str | None = None) -> str:
    """The socket of the companion (or the agent's control socket, role "agent") for this
    config file and config id (-i): several daemons (and their clients) run side by side with
    only -f (or -i, for one file with @id lines) differing."""
    key = os.path.realpath(config) + ("" if config_id is None else f"\0{config_id}")
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(run_dir or RUN_DIRS[role], f"{role}-{digest}.sock")
