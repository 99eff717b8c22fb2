"""What a tracked object contributes to an instance's priority (keepalived semantics).

Pure: the health checks and link watchers at the edge measure; these functions
turn a measurement into a `TrackState` that the state machine consumes.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIORITY_MIN = 1
PRIORITY_MAX = 254  # highest a tracked (non-owner) priority can reach
PRIORITY_OWNER = 255
WEIGHT_LIMIT = 253
FILE_FAULT_THRESHOLD = -254


@dataclass(frozen=True, slots=True)
class TrackState:
    """fault: the instance must go to FAULT; delta: added to the base priority."""

    fault: bool = False
    delta: int = 0

    def describe(self) -> str:
        return "FAULT" if self.fault else f"{self.delta:+d}"


OK = TrackState()
FAULT = TrackState(fault=True)


def weighted(weight: int, healthy: bool, reverse: bool = False) -> TrackState:
    """vrrp_script and track_interface: weight 0 -> FAULT when unhealthy;
    negative -> subtract when unhealthy; positive -> add when healthy.
    `reverse` flips the sign of the weight, as keepalived's `reverse` keyword does."""
    if reverse:
        weight = -weight
    if weight == 0:
        return OK if healthy else FAULT
    if weight < 0:
        return OK if healthy else TrackState(delta=weight)
    return TrackState(delta=weight) if healthy else OK


def file_value(weight: int, value: int, reverse: bool = False) -> TrackState:
    """track_file: the number in the file times the weight; with weight 0 any
    non-zero value is a fault; a product at or below -254 is a fault too."""
    if weight == 0:
        return OK if value == 0 else FAULT
    delta = value * (-weight if reverse else weight)
    if delta <= FILE_FAULT_THRESHOLD:
        return FAULT
    return TrackState(delta=delta)


def effective_priority(base: int, deltas: list[int] | tuple[int, ...]) -> int:
    """Base plus tracker weights, clamped to 1..254; the address owner stays 255."""
    if base >= PRIORITY_OWNER:
        return PRIORITY_OWNER
    return max(PRIORITY_MIN, min(PRIORITY_MAX, base + sum(deltas)))
