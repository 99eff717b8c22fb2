"""What every cloud provider does the same way, whatever its API: write (after a read unless
the last one showed the VIP on another node), verify through reads that may lag the write;
telling a peer from a stranger; no fight in a split brain; handing the VIP over.

A subclass names the cloud-side targets (an ENI, a server id) and implements three calls:
`_holders()` (where the cloud sends each VIP now), `_point_to(target)` (send it there) and
`_map_peers()` (which targets belong to our VRRP peers). Release never touches the cloud:
a backup never takes the VIP away from anyone; it only drops its own host address.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import os
import time
from typing import Any, Callable, Coroutine, ParamSpec, TypeVar

import cloudvip
from cloudvip.config.diagnostics import Diagnostics
from cloudvip.config.model import CloudBlock, IPAddress, VrrpInstance
from cloudvip.provider import Holder, HolderInfo, Provider, ProviderContext, ProviderError

from .linux import LinuxProvider


HANDOVER_GRACE = 1.5  # seconds a master is given to re-assert by itself before we hand over
LOCAL_POLL = 0.05  # seconds between looks at a local confirmation of our write (no API request)

P = ParamSpec("P")
R = TypeVar("R")
#: what reading a malformed API answer raises (a field missing, null, of another type, garbage)
MALFORMED = (LookupError, TypeError, ValueError, AttributeError)


#: where our own code lives (the providers, the core): an exception raised there is ours, not
#: the SDK's decoding
_OURS = tuple(os.path.dirname(os.path.abspath(f)) + os.sep for f in (__file__, cloudvip.__file__))


def a_bug(exc: BaseException) -> bool:
    """A programming error of ours rather than an answer we could not read: raised in our own
    code, and not about a null value or a field of another type (those are the answer's): an
    attribute missing on a real object, a call with the wrong arguments."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_OURS):
        return False
    if isinstance(exc, AttributeError):
        return getattr(exc, "obj", None) is not None
    if isinstance(exc, TypeError):
        text = str(exc)
        return "argument" in text and any(w in text for w in ("positional", "keyword", "required"))
    return False


def unreadable(exc: BaseException) -> ProviderError:
    """The ProviderError for an answer we (or the SDK) could not read: retryable."""
    return ProviderError(f"unexpected answer from the API: {type(exc).__name__}: {exc}")


def reads_answers(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """An API answer we cannot read (a proxy's HTML page, a field missing or of another type)
    becomes a ProviderError that says so, retryable, like any failed call: never a bare
    KeyError from deep inside. Fuzzed in tests/*/test_response_fuzz.py."""
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except MALFORMED as exc:
            if a_bug(exc):
                raise  # the mover logs it with its traceback and does not retry it as the API's fault
            raise unreadable(exc) from exc
    return wrapper


class CloudProvider(Provider):
    #: seconds a read may still show the state before our own write (a cloud whose reads are
    #: eventually consistent): the verification reads again, backing off, this long before a
    #: read that does not show our claim counts as somebody else's
    read_lag = 0.0

    #: _confirmed_locally() can confirm our write (set once its source answered)
    confirms_locally = False

    #: how the logs name this provider and mode, e.g. "aws secondary_ip"
    label: str = ""
    @staticmethod
    @abc.abstractmethod
    def parse_settings(block: CloudBlock, inst: VrrpInstance, diags: Diagnostics) -> Any:
        """The cloud block's settings, or None with file:line errors in `diags`."""

    @classmethod
    def check_config(cls, instance: VrrpInstance, diags: Diagnostics) -> None:
        assert instance.cloud is not None
        cls.parse_settings(instance.cloud, instance, diags)

    @classmethod
    def checked_settings(cls, ctx: ProviderContext) -> Any:
        """The instance's checked settings (the agent checked the config before: this only
        raises for a provider constructed on an unchecked config)."""
        diags = Diagnostics()
        assert ctx.instance.cloud is not None
        settings = cls.parse_settings(ctx.instance.cloud, ctx.instance, diags)
        if settings is None:
            raise ProviderError("; ".join(str(d) for d in diags.errors), retryable=False)
        return settings

    def __init__(self, ctx: ProviderContext, on_host: bool) -> None:
        super().__init__(ctx)
        #: the host must carry the address too (a secondary IP, a floating IP), or not (an Elastic IP)
        self.host_side: LinuxProvider | None = LinuxProvider(ctx) if on_host and ctx.manage_host else None
        self.me = ""  # our target in the cloud, known after start()
        self.peer_targets: dict[str, str] = {}  # a peer's target -> its address
        self._announced_at: float | None = None  # the last ownership read for announce()
        self._seen: list[str] | None = None  # the holders as last read (None: not read since start)

    # ---------- what a cloud implements ----------
    @abc.abstractmethod
    async def _holders(self) -> list[str]:
        """For each VIP, the target the cloud sends it to ('' for none; 'a,b' for several)."""

    @abc.abstractmethod
    async def _point_to(self, target: str) -> None:
        """Make the cloud send the VIPs to `target` (ours, or the master's when handing over)."""

    @abc.abstractmethod
    async def _map_peers(self) -> None:
        """Fill peer_targets from our VRRP peers' addresses (peer_addresses())."""

    # ---------- shared ----------
    async def _read(self) -> list[str]:
        self._seen = await self._holders()
        return self._seen

    async def _confirmed_locally(self) -> list[str] | None:
        """The holders as a source local to this node shows them once it shows ours, at no API
        request (AWS: the instance metadata); None while it does not, or where there is none."""
        return None

    async def _read_settled(self) -> list[str]:
        """The holders after our write: read until they show it, or read_lag has passed, or we
        are no longer master (a peer's claim after ours is then no split brain). A local
        confirmation, checked between the API reads, ends it at once: whichever is first."""
        now = time.monotonic()
        deadline, pause, next_read = now + self.read_lag, 0.1, now
        while True:
            local = await self._confirmed_locally() if self.confirms_locally else None
            if local is not None:
                self._seen = local
                return local
            if time.monotonic() >= next_read:
                after = await self._read()
                if self._ours(after) or time.monotonic() >= deadline or not self.ctx.wanted():
                    return after
                next_read = min(time.monotonic() + pause, deadline)  # the last read at the deadline
                pause *= 2
            elif not self.ctx.wanted():
                return self._seen or []
            wait = next_read - time.monotonic()
            await asyncio.sleep(max(0.0, min(LOCAL_POLL, wait) if self.confirms_locally else wait))

    def peer_addresses(self) -> list[str]:
        peers = [str(p.address) for p in self.ctx.instance.unicast_peers]
        return peers + [str(p) for p in self.discovered if str(p) not in peers]

    async def start_host(self) -> None:
        if self.host_side is not None:
            await self.host_side.start()

    async def map_peers_early(self) -> None:
        """Who our peers are and who holds the VIP, before a failover needs to know (and the API
        connection is open)."""
        try:
            await reads_answers(self._map_peers)()
            await reads_answers(self._read)()
        except ProviderError as exc:
            self.ctx.log.warning("%s: cannot look up the peers yet: %s", self.ctx.instance.name, exc)

    async def still_master(self) -> bool:
        """Right before a claim: does the state machine still want the VIP? Next to keepalived
        (companion mode) keepalived's own view counts too: as master it carries the addresses,
        so an event that arrives late (a transition already undone) makes no claim."""
        if not self.ctx.wanted():
            return False
        if self.ctx.manage_host:
            return True
        return await self.ctx.host.carries(self.ctx.instance)

    def _ours(self, holders: list[str]) -> bool:
        return bool(holders) and all(h == self.me for h in holders)

    def _named(self, target: str) -> str:
        return f"{target} ({self.peer_targets[target]})" if target in self.peer_targets else target

    @reads_answers
    async def holder(self) -> HolderInfo:
        return await self._classify(await self._read())

    async def _classify(self, holders: list[str]) -> HolderInfo:
        if self._ours(holders):
            return HolderInfo(Holder.SELF, self.me)
        others = sorted({t for h in holders if h and h != self.me for t in h.split(",")})
        if not others:
            return HolderInfo(Holder.NOBODY)
        if not self.peer_targets or any(t not in self.peer_targets for t in others):
            await self._map_peers()  # a peer may have been replaced since we looked
        known = all(t in self.peer_targets for t in others)
        return HolderInfo(Holder.PEER if known else Holder.OTHER, ", ".join(self._named(t) for t in others))

    @reads_answers
    async def take(self) -> bool:
        # the client is served once the cloud routes to us and the host carries the address:
        # the critical path is the write alone. No read before it when the last one showed the
        # VIP on another node (only our own write changes that to us); "nobody" is read again
        # (at start-up that read gives a node about to step down the time to make no claim).
        # The host takes the address with the write, not after its verification (in a VPC an
        # address draws no traffic until the cloud routes it); the verification follows, off
        # the client's critical path.
        seen = self._seen
        current = seen if seen is not None and any(seen) and not self._ours(seen) else await self._read()
        if self._ours(current):
            if self.host_side is not None:
                await self.host_side.take()
            return True
        if not await self.still_master():
            self.ctx.log.info("%s: no longer master: no claim", self.ctx.instance.name)
            return False
        self._seen = None  # unknown until verified: a failed write is read again next time
        # the host's address (netlink, gratuitous ARP: some 25 ms) while the write is on the wire
        moves = [self._point_to(self.me)] + ([self.host_side.take()] if self.host_side is not None else [])
        for result in await asyncio.gather(*moves, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
        after = await self._read_settled()
        if not self._ours(after) and not self.ctx.wanted():
            # we stepped down while our claim settled (nodes starting together are all master for
            # a moment): the new master's claim stands, and our host gives the address back
            self.ctx.log.info("%s: no longer master while the claim settled: no claim", self.ctx.instance.name)
            if self.host_side is not None:
                await self.host_side.release()
            return False
        verified = HolderInfo(Holder.SELF) if self._ours(after) else await self._classify(after)
        if verified.holder is Holder.PEER:
            # a peer claimed right after us: both are master (a partition). The last claim
            # stands; fighting back would be ping-pong. Reconciliation reports it and the
            # election settles it when adverts flow again.
            self.ctx.log.warning("%s: split brain? peer %s claimed the VIP right after us; not fighting",
                                 self.ctx.instance.name, verified.detail)
        elif verified.holder is not Holder.SELF:
            raise ProviderError(f"after the move the VIP is still held by {verified.detail or 'nobody'}")
        else:
            was = ", ".join(self._named(t) for t in sorted({t for h in current for t in h.split(",") if t}))
            self.ctx.log.info("%s: %s now points to %s (was %s)", self.ctx.instance.name, self.label,
                              self.me, was or "nobody")
        return True

    async def announce(self) -> None:
        """A master that hears a lower priority may have lost the VIP to that node during a
        partition (keepalived's notify_master_rx_lower_pri case): take it back if so. The cloud
        is read for it at most once per reconcile interval: a flood of lower-priority adverts
        (or events) must not spend the API's budget (Hetzner's is 3,600 requests an hour)."""
        now = time.monotonic()
        if self._announced_at is not None and now - self._announced_at < (self.reconcile_interval or 0.0):
            return
        self._announced_at = now
        if (await self.holder()).holder is not Holder.SELF:
            self.ctx.log.warning("%s: a lower-priority master held the VIP: re-asserting", self.ctx.instance.name)
            await self.take()

    @reads_answers
    async def observe(self) -> None:
        await self._read()

    async def release(self) -> None:
        if self.host_side is not None:
            await self.host_side.release()

    def handover_grace(self) -> float:
        """Two advert intervals, and at least HANDOVER_GRACE: a claim through a slow API
        (Hetzner's actions take a while) must not be overtaken by a second write to the same
        master (seen in the fault matrix: a resumed master's re-assert and our hand-over)."""
        return max(2 * self.ctx.instance.advert_int, HANDOVER_GRACE)

    @reads_answers
    async def yield_to(self, master: IPAddress) -> None:
        """We stepped down for `master` after a split brain: if the cloud still sends the VIP to
        us, hand it to the master (it may never hear an advert from us to re-assert itself).
        The mover waits handover_grace() first: a master that did hear us re-asserts by itself."""
        if (await self.holder()).holder is not Holder.SELF:
            return
        if str(master) not in self.peer_targets.values():
            await self._map_peers()
        target = next((t for t, ip in self.peer_targets.items() if ip == str(master)), None)
        if target is None:
            self.ctx.log.warning("%s: the cloud still points to us but master %s is not known there; its "
                                 "reconciliation will take the VIP", self.ctx.instance.name, master)
            return
        self._seen = None
        await self._point_to(target)
        self.ctx.log.info("%s: handed the VIP to master %s (%s)", self.ctx.instance.name, master, target)

    async def close(self) -> None:
        if self.host_side is not None:
            await self.host_side.close()
