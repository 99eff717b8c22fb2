"""Carries out take/release for one instance: serialized, latest desired state wins.

The state machine says what it wants at once; the mover gets the host and the
cloud there, one call at a time. A MASTER->BACKUP->MASTER burst while a call
is in flight costs no extra calls, and never runs out of order. Failures are
retried with jittered exponential backoff (tenacity) until the desired state
changes; VRRP keeps running meanwhile because nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from .logs import worth_logging
from .packet import IPAddress
from .provider import Holder, HolderInfo, Provider, ProviderError, within_deadline


def _retryable(exc: BaseException) -> bool:
    """Only what the API or the network did is worth another try at once: anything else that
    escapes a provider is a bug in our code (it says so, with its traceback, and the move waits
    for the next reconciliation instead of looping)."""
    return isinstance(exc, ProviderError) and exc.retryable


def _honouring_retry_after(backoff: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    """The jittered backoff, but never shorter than what the API asked for."""
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return max(backoff(state), exc.retry_after if isinstance(exc, ProviderError) else 0.0)
    return wait


#: how long (s) the cloud may keep pointing to a peer while we are master and hear no other
#: master before we take the VIP back; doubled after each such re-assert (up to the max) while
#: we stay master. A claim can land after its sender died or stepped down (a request in flight
#: when the agent was killed), and nothing else would ever undo it; a partition, where the
#: peer is master too, must not become ping-pong: it costs one claim per side per hold.
SPLIT_BRAIN_HOLD = 15.0
SPLIT_BRAIN_HOLD_MAX = 300.0

#: upper bounds (seconds) of the provider call latency histogram; the last is +Inf
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))


class Outcome(Enum):
    DONE = "done"
    MOOT = "moot"  # a take that made no claim: no longer master by then
    FAILED = "failed"


@dataclass
class MoverStats:
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    last_error: str = ""
    last_duration: float = 0.0
    last_reconcile: float = 0.0  # monotonic time of the last ownership check
    split_brain: int = 0  # checks that found a peer holding the VIP we hold
    reasserts: int = 0
    holder: str = "unknown"  # who holds the VIP in the cloud, as last seen
    #: provider call durations per operation: cumulative counts per LATENCY_BUCKETS bound, and the sum
    latency: dict[str, tuple[list[int], float]] = field(default_factory=dict)

    def observe(self, op: str, seconds: float) -> None:
        counts, total = self.latency.get(op, ([0] * len(LATENCY_BUCKETS), 0.0))
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                counts[i] += 1
        self.latency[op] = (counts, total + seconds)


class VipMover:
    def __init__(self, name: str, provider: Provider, log: logging.Logger,
                 backoff_max: float = 10.0, split_brain_hold: float = SPLIT_BRAIN_HOLD) -> None:
        self.name, self.provider, self.log = name, provider, log
        self.desired = False
        self.actual: bool | None = None  # None: unknown (at start, or after a failed call)
        self.stats = MoverStats()
        self._backoff_max = backoff_max
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._announce = False
        self._task: asyncio.Task[None] | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._yield_to: IPAddress | None = None
        self._gave_up = False  # the last move failed for good: the reconciler tries it again
        self.in_flight: Counter[str] = Counter()  # provider operations under way
        provider.ctx.wanted = lambda: self.desired
        #: has another master been heard lately? (set by the instance; unknown next to keepalived)
        self.contested: Callable[[], bool] = lambda: False
        #: the master as the state machine knows it now (None: unknown): a hand-over goes there,
        #: not to a master that has since stepped down itself (3 nodes healing from a partition)
        self.current_master: Callable[[], IPAddress | None] = lambda: None
        self._wanted_again = asyncio.Event()  # want(True): ends a hand-over's grace at once
        self._split_since: float | None = None  # when the cloud began pointing to a peer
        self._split_hold = self._split_hold_base = split_brain_hold
        self._nobody_since: float | None = None  # when the cloud was first seen pointing to nobody

    def start(self, previous: VipMover | None = None) -> None:
        """Start, and first make sure we hold nothing: a crashed agent may have left its
        addresses behind (keepalived likewise removes its VIPs at startup). With `previous` (the
        mover of the same instance before a reload changed its provider's settings): take over
        its wish instead, its counters too; a holder re-takes through the new provider, whose
        check finds the VIP its own (no write)."""
        self._task = asyncio.create_task(self._run(), name=f"mover-{self.name}")
        if self.provider.reconcile_interval:
            self._reconciler = asyncio.create_task(self._reconcile(self.provider.reconcile_interval),
                                                   name=f"reconcile-{self.name}")
        if previous is None:
            self.want(False)
            return
        self.stats = previous.stats
        self.want(previous.desired)

    def want(self, hold: bool, yield_to: IPAddress | None = None) -> None:
        if hold:
            self._wanted_again.set()
            if not self.desired:  # a new mastership
                self._split_since, self._split_hold = None, self._split_hold_base
        self.desired = hold
        self._yield_to = None if hold else yield_to
        self._settled.clear()
        self._wake.set()

    def announce(self) -> None:
        """Re-announce if (and only if) we hold the VIPs by then."""
        self._announce = True
        self._wake.set()

    async def settle(self, timeout: float) -> bool:
        """Wait until the desired state is reached; False on timeout."""
        if self.actual == self.desired and not self._wake.is_set():
            return True
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for task in (self._task, self._reconciler):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def finish(self, grace: float) -> bool:
        """Release within `grace` seconds and stop (at exit, or when a reload removes the
        instance); True if released. An operation still under way that is not the release (a
        take hanging in an API that never answers) is abandoned at once: its result no longer
        matters, and the host address must not stay behind it. Release never waits on the cloud."""
        self.want(False)
        busy = sorted(op for op, n in self.in_flight.items() if n and op != "release")
        if busy:
            self.log.warning("%s: abandoning the %s under way to release now", self.name, ", ".join(busy))
            await self.stop()
            try:
                await asyncio.wait_for(self._call("release"), grace)
            except Exception as exc:
                self._log_failure("release", exc)
                return False
            self.actual = False
            return True
        released = await self.settle(grace)
        await self.stop()
        return released

    async def _reconcile(self, interval: float) -> None:
        """While holding, check ownership in the cloud. Pointing to nobody or to a node that is
        not a peer: re-assert (a lost call or a change behind our back heals itself). Pointing
        to a peer: a split brain; the last claim stands, we report it and do not fight over it
        (the VRRP election settles it, and a master that hears a lower priority re-asserts
        through announce()), unless it lasts SPLIT_BRAIN_HOLD with no other master heard."""
        suspect = False
        while True:
            await asyncio.sleep(min(interval, 1.0) if suspect else interval)  # look closer during a split brain
            suspect = False
            if self._gave_up and self.actual is None and not self._wake.is_set():
                # a move that failed for good (e.g. access denied while a new IAM policy propagates)
                # is tried again each round, not left undone until the next transition
                self._gave_up = False
                self.log.warning("%s: retrying the %s that failed: %s", self.name,
                                 "take" if self.desired else "release", self.stats.last_error)
                self._settled.clear()
                self._wake.set()
                continue
            if self.desired is False and self.actual is False:
                await self._call_logged("observe")
                continue
            if not (self.desired and self.actual):
                continue
            self.stats.last_reconcile = time.monotonic()
            try:
                info = await self._call("holder")
                if not isinstance(info, HolderInfo):
                    raise TypeError(f"{type(self.provider).__name__}.holder() returned {info!r}")
            except Exception as exc:
                self._log_failure("ownership check", exc)
                continue
            self.stats.holder = info.holder.value + (f" ({info.detail})" if info.detail else "")
            if not (self.desired and self.actual):
                continue
            if info.holder is not Holder.PEER:
                self._split_since = None
            if info.holder is not Holder.NOBODY:
                self._nobody_since = None
            elif self._peer_may_be_moving():
                suspect = True
                continue
            if info.holder in (Holder.NOBODY, Holder.OTHER):
                self.log.warning("%s: the VIP points to %s in the cloud: re-asserting", self.name,
                                 "nobody" if info.holder is Holder.NOBODY else f"{info.detail}, not a peer,")
                self._reassert()
            elif info.holder is Holder.PEER:
                suspect = True
                self._peer_holds(info.detail)

    def _peer_may_be_moving(self) -> bool:
        """The cloud points to nobody: where a move is two writes (remove, then add: GCP), a
        peer's move shows that for a while; look again before re-asserting, up to the provider's
        nobody_grace(), so that masters in a partition do not take turns removing it."""
        grace = self.provider.nobody_grace()
        now = time.monotonic()
        if self._nobody_since is None:
            self._nobody_since = now
        if now - self._nobody_since >= grace:
            self._nobody_since = None
            return False
        self.log.info("%s: the VIP points to nobody in the cloud: a peer's move under way? looking again "
                      "(re-asserting after %.1f s)", self.name, grace)
        return True

    def _peer_holds(self, peer: str) -> None:
        """The cloud points to a peer while we are master: the last claim stands, unless it has
        stood SPLIT_BRAIN_HOLD (doubling each time) with no other master heard."""
        self.stats.split_brain += 1
        now = time.monotonic()
        if self._split_since is None or self.contested():
            self._split_since = now  # a master heard: the election settles it (announce())
        lasted = now - self._split_since
        if lasted < self._split_hold:
            self.log.warning("%s: split brain? we are master but the cloud points to %s; not re-taking "
                             "(the last claim stands; %.0f s of %.0f)", self.name, peer or "another node",
                             lasted, self._split_hold)
            return
        self._split_since, self._split_hold = None, min(2 * self._split_hold, SPLIT_BRAIN_HOLD_MAX)
        self.log.warning("%s: the cloud has pointed to peer %s for %.0f s while we are master and hear "
                         "no other master (a stale claim?): re-asserting; next time after %.0f s", self.name,
                         peer, lasted, self._split_hold)
        self._reassert()

    def _reassert(self) -> None:
        """Take the VIP again although we think we hold it (the mover's next round writes)."""
        self.stats.reasserts += 1
        self.actual = None
        self._settled.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            target = self.desired
            outcome = Outcome.DONE
            if self.actual != target:
                outcome = await self._move(target)
            if self._announce:
                self._announce = False
                if self.actual and self.desired:
                    await self._call_logged("announce")
            if self._yield_to is not None and self.actual is False and not self.desired:
                master, self._yield_to = self._yield_to, None
                if await self._grace(self.provider.handover_grace()):
                    await self._call_logged("yield_to", self.current_master() or master)
            if self.actual == self.desired or (outcome is Outcome.MOOT and self.desired == target):
                self._settled.set()  # reached, or nothing more to do until the wish changes
            elif not (outcome is Outcome.FAILED and self.desired == target):
                self._wake.set()  # the wish changed while we worked

    async def _grace(self, seconds: float) -> bool:
        """Wait `seconds` before a hand-over; False as soon as the VIP is wanted again: a new
        mastership (the master we yielded to died, say) must not wait behind a moot hand-over
        (seen in the fault matrix: a takeover 1.5 s late)."""
        self._wanted_again.clear()
        if self.desired:
            return False
        try:
            await asyncio.wait_for(self._wanted_again.wait(), seconds)
        except TimeoutError:
            return not self.desired
        return False

    async def _move(self, target: bool) -> Outcome:
        """Try to reach `target`: DONE; MOOT when the provider made no claim (no longer master
        by then: we do not hold the VIP, and that is no error); FAILED for good (not retryable,
        or superseded)."""
        op = "take" if target else "release"

        def changed(_: RetryCallState) -> bool:
            return self.desired != target  # a newer wish supersedes this one: stop retrying

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning("%s: %s failed (attempt %d): %s; retrying in %.2f s", self.name, op,
                             state.attempt_number, exc, state.upcoming_sleep)

        try:
            async for attempt in AsyncRetrying(
                    wait=_honouring_retry_after(wait_random_exponential(multiplier=0.2, max=self._backoff_max)),
                    retry=retry_if_exception(_retryable), stop=changed, before_sleep=before_sleep,
                    reraise=True):
                with attempt:
                    held = await self._call(op)
        except Exception as exc:  # not retryable, or superseded while failing
            self.actual = None
            if self.desired == target:
                self._gave_up = True
                self._log_failure(op, exc, "tried again at the next reconciliation")
            return Outcome.FAILED
        if target and held is False:
            self.actual = False
            return Outcome.MOOT
        self.actual = target
        return Outcome.DONE

    async def _call_logged(self, op: str, *args: object) -> None:
        """A best-effort call: failures are logged and counted, the reconciler heals the rest."""
        try:
            await self._call(op, *args)
        except Exception as exc:
            self._log_failure(op, exc)

    def _log_failure(self, op: str, exc: Exception, then: str = "") -> None:
        """A provider error in one line; a bug of ours (anything but a ProviderError) with its
        traceback, counted apart (errors["bug"], the metric's op="bug") and logged sparsely."""
        suffix = f" ({then})" if then else ""
        if isinstance(exc, ProviderError):
            (self.log.error if then else self.log.warning)("%s: %s failed: %s%s", self.name, op, exc, suffix)
            return
        self.stats.errors["bug"] += 1
        if worth_logging(self.stats.errors["bug"]):
            self.log.error("%s: %s failed: a bug in cloudvip, not an API error (%d so far)%s", self.name, op,
                           self.stats.errors["bug"], suffix, exc_info=exc)

    async def _call(self, op: str, *args: object) -> object:
        start = time.monotonic()
        self.stats.calls[op] += 1
        self.in_flight[op] += 1
        try:
            result = await within_deadline(self.provider, op, getattr(self.provider, op)(*args))
            if op == "take" and result is not False:
                self.stats.holder = Holder.SELF.value
            return result
        except Exception as exc:
            self.stats.errors[op] += 1
            self.stats.last_error = f"{op}: {exc}"
            raise
        finally:
            self.in_flight[op] -= 1
            self.stats.last_duration = time.monotonic() - start
            self.stats.observe(op, self.stats.last_duration)
