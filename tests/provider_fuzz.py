"""Shared by the provider answer fuzzers (tests/*/test_response_fuzz.py): a provider started
with its real API client whose requests a script answers, and the property every operation
must keep whatever the answers."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import Any, Callable

from cloudvip.provider import ProviderError
from cloudvip_providers.cloud import CloudProvider

PEER = IPv4Address("198.51.100.12")


def instance_conf(vip: str, cloud: str, settings: str) -> str:
    """One vrrp_instance with PEER as its unicast peer and a `cloud` block of `settings` lines."""
    return (f"vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n    unicast_peer {{\n"
            f"        {PEER}\n    }}\n    virtual_ipaddress {{\n        {vip}\n    }}\n"
            f"    cloud {cloud} {{\n{settings}    }}\n}}\n")


def start_answered(p: CloudProvider, attach: Callable[[Any], None]) -> None:
    """Start `p` with its real client, after `attach` routed that client's requests to a script."""
    make = p._client  # type: ignore[attr-defined]

    def client(*args: Any) -> Any:
        c = make(*args)
        attach(c)
        return c
    p._client = client  # type: ignore[attr-defined]
    asyncio.run(p.start())


def every_operation(p: CloudProvider, replay: Callable[[], None], seen: set[str], secret: str = "") -> None:
    """holder, take, discover_peers, yield_to, each on the scripted answers from the start
    (`replay`): it completes, or raises a ProviderError that says what went wrong (and never
    shows `secret`). Anything else fails the test."""
    p.peer_targets = {}
    for op in (p.holder, p.take, p.discover_peers, lambda: p.yield_to(PEER)):
        replay()
        try:
            asyncio.run(op())  # type: ignore[arg-type]
            seen.add("ok")
        except ProviderError as exc:
            seen.add("error")
            assert str(exc) and (not secret or secret not in str(exc))
