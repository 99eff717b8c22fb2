"""The companion wants the VIP exactly while keepalived carries it, and holds a claim then: a
claim that made none (keepalived did not carry the VIP yet when it was checked) is made again
when the host is checked after the event."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import Any

import pytest

from cloudvip import companion
from cloudvip.companion import Companion
from cloudvip.companion_events import State
from cloudvip.config import loads


class Mover:
    def __init__(self, desired: bool, actual: bool | None) -> None:
        self.desired, self.actual = desired, actual
        self.wants: list[bool] = []

    def want(self, hold: bool, yield_to: IPv4Address | None = None) -> None:
        self.wants.append(hold)
        self.desired = hold


class Host:
    async def carries(self, inst: Any) -> bool:
        return True


@pytest.mark.parametrize(("actual", "wants"), [(False, [True]), (True, []), (None, [])])
def test_carrying_the_vip_with_no_claim_held_makes_the_claim(monkeypatch: pytest.MonkeyPatch,
                                                              actual: bool | None, wants: list[bool]) -> None:
    """actual False: the take made no claim (MOOT); True: held; None: a move under way or failed
    (the mover retries that itself)."""
    monkeypatch.setattr(companion, "RECHECK", 0.01)
    inst = loads("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n"
                 " virtual_ipaddress {\n  198.51.100.100/24\n }\n}\n").instances[0]
    comp = Companion.__new__(Companion)
    mover = Mover(desired=True, actual=actual)
    comp.movers = {"VI_1": mover}  # type: ignore[dict-item]
    comp.host = Host()  # type: ignore[assignment]
    asyncio.run(comp._follow_host(inst, State.MASTER))
    assert mover.wants == wants
