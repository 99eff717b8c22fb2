"""A recording stand-in for HostNetwork, for provider tests that need no namespace."""

from __future__ import annotations

from typing import Any

from cloudvip.hostnet import Link


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
