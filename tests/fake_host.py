"""A recording stand-in for HostNetwork, for provider tests that need no namespace."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, TypeVar

from cloudvip.config import loads
from cloudvip.hostnet import Link
from cloudvip.provider import Provider, ProviderContext

P = TypeVar("P", bound=Provider)
T = TypeVar("T")


class FakeHost:
    """Records what a provider does on the host."""

    def __init__(self) -> None:
        self.addresses: set[str] = set()

    async def link(self, name: str) -> Link:
        return Link(name, 2, "02:00:00:00:00:01", True)

    async def add_address(self, ifindex: int, vip: Any) -> bool:
        self.addresses.add(str(vip.address))
        return True

    async def remove_address(self, ifindex: int, vip: Any) -> bool:
        self.addresses.discard(str(vip.address))
        return True

    async def has_address(self, ifindex: int, address: Any) -> bool:
        return str(address) in self.addresses


def build(cls: type[P], config_text: str) -> tuple[P, FakeHost]:
    """A provider for the first instance of `config_text`, on a FakeHost, sending no raw frames."""
    cfg = loads(config_text)
    host = FakeHost()
    p = cls(ProviderContext(cfg.instances[0], cfg.global_defs, host,  # type: ignore[arg-type]
                            logging.getLogger("test")))
    side = getattr(p, "host_side", None)
    if side is not None:  # none for an Elastic IP
        side._announcers = {}
    return p, host


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro
    return asyncio.run(main())


def doctor_findings(provider: Any) -> list[Any]:
    """`cloudvip doctor`'s findings of a built provider (closed after)."""
    async def go() -> list[Any]:
        try:
            return list(await provider.doctor())
        finally:
            await provider.close()

    return run(go())


def failed(findings: list[Any]) -> list[Any]:
    """The findings that failed (✘)."""
    from cloudvip.doctor.findings import Status

    return [f for f in findings if f.status is Status.FAIL]
