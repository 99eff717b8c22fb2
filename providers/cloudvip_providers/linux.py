"""The classic keepalived way, for LANs: VIPs as interface addresses, announced with
gratuitous ARP / unsolicited neighbour advertisements."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from cloudvip.announce import Announcer
from cloudvip.config.model import VirtualAddress
from cloudvip.hostnet import Link
from cloudvip.provider import Holder, HolderInfo, Provider, ProviderContext


@dataclass(frozen=True, slots=True)
class _Placed:
    vip: VirtualAddress
    link: Link


class LinuxProvider(Provider):
    name = "linux"

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        self._placed: list[_Placed] = []
        self._announcers: dict[str, Announcer] = {}
        self._timers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        inst = self.ctx.instance
        links: dict[str, Link] = {}
        for vip in inst.vips + inst.vips_excluded:
            dev = vip.dev or inst.interface
            if dev not in links:
                links[dev] = await self.ctx.host.link(dev)
            self._placed.append(_Placed(vip, links[dev]))
        self._announcers = {n: Announcer(n, link.index, link.mac) for n, link in links.items()}

    async def take(self) -> bool:
        for p in self._placed:
            await self.ctx.host.add_address(p.link.index, p.vip)
        self._cancel_timers()
        inst = self.ctx.instance
        await self.announce(inst.garp_master_repeat)
        if inst.garp_master_delay:
            self._timers.append(asyncio.create_task(self._later(inst.garp_master_delay, inst.garp_master_repeat)))
        if inst.garp_master_refresh:
            self._timers.append(asyncio.create_task(self._refresh(inst.garp_master_refresh,
                                                                  inst.garp_master_refresh_repeat)))
        return True

    async def release(self) -> None:
        self._cancel_timers()
        for p in self._placed:
            await self.ctx.host.remove_address(p.link.index, p.vip)

    async def announce(self, repeat: int | None = None) -> None:
        count = self.ctx.instance.garp_master_repeat if repeat is None else repeat
        for name, announcer in self._announcers.items():
            addrs = [p.vip.address for p in self._placed if p.link.name == name]
            try:
                announcer.announce(addrs, count)
            except OSError as exc:  # interface gone or down: the address is still ours
                self.ctx.log.warning("%s: announcing %s on %s failed: %s", self.ctx.instance.name,
                                     ", ".join(map(str, addrs)), name, exc)

    async def holder(self) -> HolderInfo:
        present = [await self.ctx.host.has_address(p.link.index, p.vip.address) for p in self._placed]
        if present and all(present):
            return HolderInfo(Holder.SELF)
        return HolderInfo(Holder.NOBODY if not any(present) else Holder.UNKNOWN,
                          f"{sum(present)} of {len(present)} addresses present")

    async def close(self) -> None:
        self._cancel_timers()

    async def _later(self, delay: float, repeat: int) -> None:
        await asyncio.sleep(delay)
        await self.announce(repeat)

    async def _refresh(self, every: float, repeat: int) -> None:
        while True:
            await asyncio.sleep(every)
            await self.announce(repeat)

    def _cancel_timers(self) -> None:
        for task in self._timers:
            task.cancel()
        self._timers.clear()
