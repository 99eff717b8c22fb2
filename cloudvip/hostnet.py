"""The host's side of a VIP, over netlink (pyroute2): links, addresses, link events.

Address changes are idempotent (adding a present address or removing an
absent one is success), so a retried or repeated move never fails on itself.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Any, Callable

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK

if TYPE_CHECKING:
    from .config import VrrpInstance

from .config.model import IPAddress, VirtualAddress

log = logging.getLogger("cloudvip.hostnet")

IFF_UP, IFF_RUNNING = 0x1, 0x40
IFA_F_SECONDARY = 0x1
SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    index: int
    mac: str
    up: bool


def _is_up(msg: Any) -> bool:
    flags = int(msg["flags"])
    return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)


LinkCallback = Callable[[Link], None]


class HostNetwork:
    """One netlink connection for requests, one for link events."""

    def __init__(self) -> None:
        self._ipr: AsyncIPRoute | None = None
        self._events: AsyncIPRoute | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._ipr = AsyncIPRoute()

    @property
    def ipr(self) -> AsyncIPRoute:
        if self._ipr is None:
            raise RuntimeError("HostNetwork.open() was not called")
        return self._ipr

    async def close(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        for ipr in (self._events, self._ipr):
            if ipr is not None:
                ipr.close()
        self._ipr = self._events = None

    async def link(self, ifname: str) -> Link:
        async with self._lock:
            found = await self.ipr.link_lookup(ifname=ifname)
            if not found:
                raise LookupError(f"no interface named {ifname}")
            msg = (await self.ipr.link("get", index=found[0]))[0]
        return Link(ifname, int(found[0]), str(msg.get("IFLA_ADDRESS") or "00:00:00:00:00:00"), _is_up(msg))

    async def addresses(self, ifindex: int) -> list[tuple[IPAddress, int, int]]:
        """(address, prefixlen, flags) of an interface, in kernel order."""
        async with self._lock:
            dump = await self.ipr.addr("dump", index=ifindex)
            return [(ip_address(m.get("IFA_ADDRESS")), int(m["prefixlen"]),
                     int(m.get("IFA_FLAGS") or m["flags"])) async for m in dump if m.get("IFA_ADDRESS")]

    async def primary_address(self, ifindex: int, family: int, exclude: set[IPAddress]) -> IPAddress | None:
        """The address the kernel sources VRRP from: IPv4 primary, IPv6 link-local."""
        for addr, _plen, flags in await self.addresses(ifindex):
            if addr.version != family or addr in exclude:
                continue
            if family == 4 and not flags & IFA_F_SECONDARY:
                return addr
            if family == 6 and isinstance(addr, IPv6Address) and addr.is_link_local:
                return addr
        return None

    async def add_address(self, ifindex: int, vip: VirtualAddress) -> bool:
        """Add a VIP; True if it was added, False if it was already there."""
        kw: dict[str, Any] = {"index": ifindex, "address": str(vip.address),
                              "prefixlen": vip.interface.network.prefixlen}
        if vip.label:
            kw["label"] = vip.label
        if vip.scope is not None:
            kw["scope"] = SCOPES.get(vip.scope, int(vip.scope) if vip.scope.isdigit() else 0)
        if vip.brd is not None:
            kw["broadcast"] = str(vip.brd)
        if isinstance(vip.address, IPv6Address):
            kw["flags"] = 0x2  # IFA_F_NODAD: the VIP must answer at once, as keepalived sets it
        try:
            async with self._lock:
                await self.ipr.addr("add", **kw)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            raise
        return True

    async def remove_address(self, ifindex: int, vip: VirtualAddress) -> bool:
        """Remove a VIP; True if it was removed, False if it was not there."""
        try:
            async with self._lock:
                await self.ipr.addr("del", index=ifindex, address=str(vip.address),
                                    prefixlen=vip.interface.network.prefixlen)
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    async def has_address(self, ifindex: int, address: IPv4Address | IPv6Address) -> bool:
        return any(a == address for a, _p, _f in await self.addresses(ifindex))

    async def carries(self, inst: VrrpInstance) -> bool:
        """The host carries every VIP of the instance (what keepalived does as master); True
        when it has none (an Elastic IP only)."""
        indexes: dict[str, int] = {}
        for vip in inst.vips:
            dev = vip.dev or inst.interface
            if dev not in indexes:
                indexes[dev] = (await self.link(dev)).index
            if not await self.has_address(indexes[dev], vip.address):
                return False
        return True

    async def watch_links(self, callback: LinkCallback) -> None:
        """Call back on every link change (pyroute2 link events, no polling)."""
        self._events = AsyncIPRoute()
        await self._events.bind(groups=RTMGRP_LINK)
        self._watch_task = asyncio.create_task(self._watch(callback), name="link-events")

    async def _watch(self, callback: LinkCallback) -> None:
        assert self._events is not None
        while True:
            try:
                async for msg in self._events.get():
                    if msg.get("event") not in ("RTM_NEWLINK", "RTM_DELLINK"):
                        continue
                    up = _is_up(msg) and msg["event"] == "RTM_NEWLINK"
                    callback(Link(str(msg.get("IFLA_IFNAME")), int(msg["index"]),
                                  str(msg.get("IFLA_ADDRESS") or ""), up))
            except asyncio.CancelledError:
                raise
            except Exception:  # a malformed event must not end link tracking
                log.exception("link event handling failed; continuing")
                await asyncio.sleep(0.1)

