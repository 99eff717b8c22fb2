"""The mover: one call at a time, the latest wish wins, failures retried with backoff."""

from __future__ import annotations

import asyncio
import time
import logging

import pytest

from cloudvip.provider import Holder, HolderInfo, Provider, ProviderContext, ProviderError
from cloudvip.vip_mover import VipMover


class FakeProvider(Provider):
    name = "fake"

    def __init__(self, delay: float = 0.0, failures: int = 0, retryable: bool = True) -> None:
        super().__init__(ProviderContext(None, None, None, logging.getLogger("test")))  # type: ignore[arg-type]
        self.calls: list[str] = []
        self.delay, self.failures, self.retryable = delay, failures, retryable
        self.in_flight = 0
        self.max_in_flight = 0

    async def _op(self, name: str) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.calls.append(name)
            await asyncio.sleep(self.delay)
            if self.failures:
                self.failures -= 1
                raise ProviderError(f"{name} failed", retryable=self.retryable)
        finally:
            self.in_flight -= 1

    claims = True  # False: like a cloud provider that found the node no longer master (no claim)

    async def take(self) -> bool:
        await self._op("take")
        return self.claims

    async def release(self) -> None:
        await self._op("release")

    async def announce(self) -> None:
        await self._op("announce")

    async def yield_to(self, master: object) -> None:
        self.yielded_to = master
        await self._op("yield_to")

    async def observe(self) -> None:
        await self._op("observe")

    def handover_grace(self) -> float:
        return self.grace

    def nobody_grace(self) -> float:
        return self.nobody

    nobody = 0.0

    async def holder(self) -> HolderInfo:
        return self.cloud

    grace = 0.0

    cloud = HolderInfo(Holder.UNKNOWN)


def mover(provider: FakeProvider) -> VipMover:
    m = VipMover("VI_1", provider, logging.getLogger("test"), backoff_max=0.05)
    m.start()
    return m


async def holding(p: FakeProvider, reconcile: float) -> VipMover:
    """A mover that reconciles every `reconcile` s and already holds the VIP."""
    p.reconcile_interval = reconcile
    m = mover(p)
    m.want(True)
    await m.settle(1)
    return m


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_take_then_release() -> None:
    async def go() -> list[str]:
        p = FakeProvider()
        m = mover(p)
        m.want(True)
        assert await m.settle(1) and m.actual is True
        m.want(False)
        assert await m.settle(1) and m.actual is False
        await m.stop()
        return p.calls
    assert run(go()) == ["take", "release"]  # the wish came before the startup cleanup ran: latest wins


def test_startup_removes_leftovers() -> None:
    async def go() -> list[str]:
        p = FakeProvider()
        m = mover(p)
        assert await m.settle(1) and m.actual is False
        await m.stop()
        return p.calls
    assert run(go()) == ["release"]


def test_burst_while_a_call_is_in_flight_costs_no_extra_calls() -> None:
    async def go() -> FakeProvider:
        p = FakeProvider(delay=0.05)
        m = mover(p)
        assert await m.settle(1)
        m.want(True)
        await asyncio.sleep(0.01)  # take in flight
        m.want(False)
        m.want(True)  # MASTER -> BACKUP -> MASTER: nothing more to do after the first take
        assert await m.settle(1)
        await m.stop()
        return p
    p = run(go())
    assert p.calls == ["release", "take"] and p.max_in_flight == 1


def test_latest_wish_wins_in_order() -> None:
    async def go() -> list[str]:
        p = FakeProvider(delay=0.05)
        m = mover(p)
        assert await m.settle(1)
        m.want(True)
        await asyncio.sleep(0.01)
        m.want(False)  # superseded take is finished first, then the release: never out of order
        assert await m.settle(1) and m.actual is False
        await m.stop()
        return p.calls
    assert run(go()) == ["release", "take", "release"]


def test_retryable_failures_are_retried_until_success() -> None:
    async def go() -> tuple[list[str], int]:
        p = FakeProvider(failures=3)
        m = mover(p)
        m.want(True)
        assert await m.settle(5) and m.actual is True
        await m.stop()
        return p.calls, m.stats.errors["take"]
    calls, errors = run(go())
    assert calls == ["take"] * 4 and errors == 3


def test_a_newer_wish_stops_the_retries() -> None:
    async def go() -> list[str]:
        p = FakeProvider(failures=1000)
        m = mover(p)
        m.want(True)
        await asyncio.sleep(0.1)
        p.failures = 0
        m.want(False)
        assert await m.settle(2) and m.actual is False
        await m.stop()
        return p.calls
    calls = run(go())
    assert calls[-1] == "release" and "take" in calls


def test_non_retryable_failure_gives_up_and_reports() -> None:
    async def go() -> VipMover:
        p = FakeProvider()
        m = mover(p)
        assert await m.settle(1)
        p.failures, p.retryable = 1, False
        m.want(True)
        assert not await m.settle(0.3)
        await m.stop()
        return m
    m = run(go())
    assert m.actual is None and "take failed" in m.stats.last_error


def test_announce_only_when_holding() -> None:
    async def go() -> list[str]:
        p = FakeProvider()
        m = mover(p)
        m.announce()
        await asyncio.sleep(0.05)
        m.want(True)
        await m.settle(1)
        m.announce()
        await asyncio.sleep(0.05)
        await m.stop()
        return p.calls
    assert run(go()) == ["release", "take", "announce"]


@pytest.mark.parametrize("hold", [True, False])
def test_settle_is_immediate_when_nothing_to_do(hold: bool) -> None:
    async def go() -> bool:
        p = FakeProvider()
        m = mover(p)
        m.want(hold)
        await m.settle(1)
        result = await m.settle(0.01)
        await m.stop()
        return result
    assert run(go())


def test_a_move_that_failed_for_good_is_tried_again_at_the_next_reconciliation() -> None:
    async def go() -> tuple[list[str], VipMover, bool]:
        p = FakeProvider()
        p.reconcile_interval = 0.1
        m = mover(p)
        assert await m.settle(1)
        p.failures, p.retryable = 1, False  # e.g. access denied: the IAM policy is not there yet
        m.want(True)
        settled_at_once = await m.settle(0.05)
        assert await m.settle(1)  # the reconciler's round took it
        await m.stop()
        return p.calls, m, settled_at_once
    calls, m, at_once = run(go())
    assert not at_once and calls == ["release", "take", "take"] and m.actual is True


def test_reconcile_reasserts_when_the_vip_points_to_nobody() -> None:
    async def go() -> tuple[list[str], VipMover]:
        p = FakeProvider()
        p.cloud = HolderInfo(Holder.SELF)
        m = await holding(p, 0.05)
        p.cloud = HolderInfo(Holder.NOBODY)  # the assignment was lost behind our back
        await asyncio.sleep(0.08)
        p.cloud = HolderInfo(Holder.SELF)  # the re-take fixed it
        await asyncio.sleep(0.2)
        await m.stop()
        return p.calls, m
    calls, m = run(go())
    assert calls == ["take", "take"] and m.stats.reasserts == 1 and m.actual is True


def test_nobody_during_a_peers_two_write_move_is_looked_at_again_not_fought() -> None:
    """Where a move is two writes (GCP: remove, then add), "nobody" may be a peer's move under
    way: re-asserting then would remove it from the peer again (three masters of a partition
    took turns, 20 writes in the GCP fault matrix). Look again up to nobody_grace()."""
    async def go() -> tuple[list[str], VipMover]:
        p = FakeProvider()
        p.nobody = 0.3
        p.cloud = HolderInfo(Holder.SELF)
        m = await holding(p, 0.05)
        p.cloud = HolderInfo(Holder.NOBODY)  # the peer removed it from us ...
        await asyncio.sleep(0.15)
        p.cloud = HolderInfo(Holder.PEER, "10.0.0.2")  # ... and added it to itself
        await asyncio.sleep(0.3)
        await m.stop()
        return p.calls, m
    calls, m = run(go())
    assert calls == ["take"] and m.stats.reasserts == 0


def test_nobody_that_stays_nobody_is_reasserted_after_the_grace() -> None:
    async def go() -> tuple[list[str], float, VipMover]:
        p = FakeProvider()
        p.nobody = 0.3
        p.cloud = HolderInfo(Holder.SELF)
        m = await holding(p, 0.05)
        p.cloud = HolderInfo(Holder.NOBODY)
        lost = time.monotonic()
        while p.calls.count("take") < 2 and time.monotonic() - lost < 3:
            await asyncio.sleep(0.01)
        waited = time.monotonic() - lost
        await m.stop()
        return p.calls, waited, m
    calls, waited, m = run(go())
    assert calls.count("take") == 2 and m.stats.reasserts == 1 and waited >= 0.3


def test_reconcile_reports_but_does_not_fight_a_peer_holding_the_vip_within_the_hold() -> None:
    async def go() -> tuple[list[str], VipMover]:
        p = FakeProvider()
        m = await holding(p, 0.05)
        p.cloud = HolderInfo(Holder.PEER, "eni-peer")
        await asyncio.sleep(0.3)
        await m.stop()
        return p.calls, m
    calls, m = run(go())
    assert calls == ["take"] and m.stats.split_brain >= 3  # reported every check, no API write


def split_brain(hold: float, seconds: float, contested: bool) -> tuple[list[float], VipMover]:
    """A master whose cloud keeps pointing to a peer for `seconds`: when it re-took the VIP."""
    async def go() -> tuple[list[float], VipMover]:
        p = FakeProvider()
        p.reconcile_interval = 0.02
        p.cloud = HolderInfo(Holder.SELF)
        m = VipMover("VI_1", p, logging.getLogger("test"), backoff_max=0.05, split_brain_hold=hold)
        m.contested = lambda: contested
        m.start()
        m.want(True)
        await m.settle(1)
        loop = asyncio.get_running_loop()
        start, takes = loop.time(), []
        original = p.take

        async def take() -> None:
            takes.append(loop.time() - start)
            await original()
        p.take = take  # type: ignore[method-assign]
        p.cloud = HolderInfo(Holder.PEER, "eni-peer")  # and it stays so, whatever we write
        await asyncio.sleep(seconds)
        await m.stop()
        return takes, m
    return run(go())


def test_a_peer_left_holding_the_vip_is_overruled_after_the_hold_then_less_and_less_often() -> None:
    # e.g. a claim that landed after its sender was killed: no other master is heard, and
    # nothing else would ever point the cloud back to the master
    takes, m = split_brain(hold=0.1, seconds=0.6, contested=False)
    assert len(takes) == 2 and m.stats.reasserts == 2, takes  # after 0.1 s, then after 0.2 s more
    assert takes[0] >= 0.1 and takes[1] - takes[0] >= 0.2, takes


def test_a_peer_holding_the_vip_is_not_overruled_while_another_master_is_heard() -> None:
    takes, m = split_brain(hold=0.1, seconds=0.4, contested=True)  # VRRP is settling it
    assert takes == [] and m.stats.reasserts == 0 and m.stats.split_brain >= 5


def test_reconcile_is_idle_while_not_holding() -> None:
    async def go() -> int:
        p = FakeProvider()
        p.reconcile_interval = 0.02
        p.cloud = HolderInfo(Holder.NOBODY)
        m = mover(p)
        await asyncio.sleep(0.15)
        await m.stop()
        return m.stats.reasserts
    assert run(go()) == 0


def test_a_backup_observes_the_cloud_every_reconcile_interval_and_a_holder_does_not() -> None:
    """A backup reads the cloud each round (its API connection stays open for a takeover);
    while holding, the round is the ownership check instead."""
    async def go() -> tuple[int, int]:
        p = FakeProvider()
        p.reconcile_interval = 0.02
        m = mover(p)
        await asyncio.sleep(0.15)
        as_backup = p.calls.count("observe")
        m.want(True)
        await m.settle(1)
        p.calls.clear()
        await asyncio.sleep(0.15)
        await m.stop()
        return as_backup, p.calls.count("observe")
    as_backup, as_holder = run(go())
    assert as_backup >= 4 and as_holder == 0


def test_reconcile_reasserts_against_a_stranger() -> None:
    async def go() -> VipMover:
        p = FakeProvider()
        m = await holding(p, 0.05)
        p.cloud = HolderInfo(Holder.OTHER, "eni-unknown")
        await asyncio.sleep(0.08)
        p.cloud = HolderInfo(Holder.SELF)
        await asyncio.sleep(0.1)
        await m.stop()
        return m
    m = run(go())
    assert m.stats.reasserts == 1 and m.stats.split_brain == 0


def test_the_provider_can_ask_whether_the_vip_is_still_wanted() -> None:
    async def go() -> list[bool]:
        p = FakeProvider(delay=0.05)
        m = mover(p)
        seen = [p.ctx.wanted()]
        m.want(True)
        seen.append(p.ctx.wanted())
        m.want(False)  # stepped down while the take may still be in flight
        seen.append(p.ctx.wanted())
        await m.stop()
        return seen
    assert run(go()) == [False, True, False]


async def stepped_down(grace: float) -> tuple[FakeProvider, VipMover]:
    """A mover that held the VIP and has just stepped down for a higher master."""
    from ipaddress import IPv4Address

    p = FakeProvider()
    p.grace = grace
    m = mover(p)
    m.want(True)
    await m.settle(1)
    m.want(False, yield_to=IPv4Address("192.0.2.1"))
    return p, m


def test_a_hand_over_waits_its_grace_and_then_writes() -> None:
    async def go() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        p, m = await stepped_down(0.2)
        while "yield_to" not in p.calls and loop.time() - start < 2:
            await asyncio.sleep(0.01)
        waited = loop.time() - start
        await m.stop()
        return p.calls, waited
    calls, waited = run(go())
    assert calls == ["take", "release", "yield_to"] and waited >= 0.2


def test_a_hand_over_goes_to_the_master_followed_now() -> None:
    # 3 nodes healing from a partition: we stepped down for node 2, which then stepped down for
    # node 1; handing the VIP to node 2 would cost a second hand-over
    async def go() -> object:
        from ipaddress import IPv4Address

        p, m = await stepped_down(0.05)
        m.current_master = lambda: IPv4Address("192.0.2.9")
        while "yield_to" not in p.calls:
            await asyncio.sleep(0.01)
        await m.stop()
        return p.yielded_to
    assert str(run(go())) == "192.0.2.9"


def test_becoming_master_again_ends_a_hand_over_grace_at_once() -> None:
    # the master we yielded to died during the grace: the takeover must not wait behind it
    async def go() -> tuple[list[str], float]:
        p, m = await stepped_down(5.0)
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        start = loop.time()
        m.want(True)
        assert await m.settle(2)
        took = loop.time() - start
        await m.stop()
        return p.calls, took
    calls, took = run(go())
    assert calls == ["take", "release", "take"] and took < 1.0, (calls, took)  # no yield_to, no 5 s


def test_a_take_that_made_no_claim_is_not_a_hold() -> None:
    """Next to keepalived, a late MASTER event finds keepalived no longer master: the provider
    makes no claim, and the mover must not think (nor report) it holds the VIP."""
    async def go() -> VipMover:
        p = FakeProvider()
        p.claims = False
        p.reconcile_interval = 0.05
        p.cloud = HolderInfo(Holder.PEER, "eni-peer")
        m = mover(p)
        m.want(True)
        assert await m.settle(1)  # nothing more to do until the wish changes: no retry loop
        await asyncio.sleep(0.2)  # reconciliation rounds: none counts a split brain for a VIP we do not hold
        assert p.calls == ["take"]
        await m.stop()
        return m

    m = run(go())
    assert m.actual is False and m.stats.holder != Holder.SELF.value
    assert m.stats.split_brain == 0 and m.stats.reasserts == 0


class HangingProvider(FakeProvider):
    """Its first `hangs` takes never return (an API that accepts and never answers)."""

    hangs = 1

    async def take(self) -> bool:
        if self.hangs:
            self.hangs -= 1
            self.calls.append("take (hangs)")
            await asyncio.Event().wait()
        return await super().take()


def test_an_operation_that_never_returns_is_abandoned_at_its_deadline_and_retried() -> None:
    async def go() -> VipMover:
        p = HangingProvider()
        p.operation_timeout = 0.2
        m = mover(p)
        m.want(True)
        assert await m.settle(3)
        await m.stop()
        assert p.calls == ["take (hangs)", "take"]
        return m

    m = run(go())
    assert m.actual is True and m.stats.errors["take"] == 1
    assert "no result within 0.2 s (operation_timeout)" in m.stats.last_error


def test_finish_abandons_a_hung_take_and_releases_at_once() -> None:
    async def go() -> tuple[bool, float, list[str]]:
        p = HangingProvider()
        m = mover(p)
        m.want(True)
        await asyncio.sleep(0.1)  # the take hangs (its deadline is 30 s)
        loop = asyncio.get_running_loop()
        start = loop.time()
        released = await m.finish(5.0)
        return released, loop.time() - start, p.calls

    released, took, calls = run(go())
    assert released and calls == ["take (hangs)", "release"], calls
    assert took < 1.0  # not the 5 s grace: nothing was going to end the take


def test_finish_waits_for_a_release_under_way_after_a_finished_take() -> None:
    """Only operations still under way are abandoned: a take that finished long ago is not."""
    async def go() -> list[str]:
        p = FakeProvider(delay=0.2)
        m = mover(p)
        m.want(True)
        assert await m.settle(2)
        m.want(False)
        await asyncio.sleep(0.05)  # the release is under way
        assert await m.finish(5.0)
        return p.calls
    assert run(go()) == ["take", "release"]  # not a second, abandoning release
