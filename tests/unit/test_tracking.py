"""keepalived's weight rules for tracked scripts, interfaces and files."""

from __future__ import annotations

import pytest

from cloudvip.tracking import FAULT, OK, TrackState, effective_priority, file_value, weighted


@pytest.mark.parametrize("weight,healthy,reverse,expected", [
    (0, True, False, OK), (0, False, False, FAULT),
    (-50, True, False, OK), (-50, False, False, TrackState(delta=-50)),
    (20, True, False, TrackState(delta=20)), (20, False, False, OK),
    (-50, True, True, TrackState(delta=50)), (-50, False, True, OK),   # reverse flips the sign
    (20, False, True, TrackState(delta=-20)),
])
def test_weighted(weight: int, healthy: bool, reverse: bool, expected: TrackState) -> None:
    assert weighted(weight, healthy, reverse) == expected


@pytest.mark.parametrize("weight,value,reverse,expected", [
    (0, 0, False, OK), (0, 3, False, FAULT),
    (10, 3, False, TrackState(delta=30)), (-10, 3, False, TrackState(delta=-30)),
    (10, 3, True, TrackState(delta=-30)),
    (-1, 254, False, FAULT), (-2, 126, False, TrackState(delta=-252)),
])
def test_file_value(weight: int, value: int, reverse: bool, expected: TrackState) -> None:
    assert file_value(weight, value, reverse) == expected


def test_effective_priority_clamps_and_keeps_owner() -> None:
    assert effective_priority(100, [-50, 20]) == 70
    assert effective_priority(100, [-150]) == 1
    assert effective_priority(200, [100]) == 254
    assert effective_priority(255, [-100]) == 255


def test_describe() -> None:
    assert FAULT.describe() == "FAULT" and TrackState(delta=-5).describe() == "-5"
