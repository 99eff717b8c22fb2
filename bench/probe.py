#!/usr/bin/env python3
"""Run inside a node's namespace: print, as JSON lines with CLOCK_MONOTONIC times (the same
clock in every namespace), each VRRP advert received and each address added or removed.

    ip netns exec NS python bench/probe.py
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from ipaddress import IPv4Address

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def main() -> None:
    loop = asyncio.get_running_loop()
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    raw.setblocking(False)

    def on_packet() -> None:
        while True:
            try:
                pkt = raw.recv(2048)
            except BlockingIOError:
                return
            now = time.monotonic()
            ihl = (pkt[0] & 0x0F) * 4
            emit(t=now, ev="advert", src=str(IPv4Address(pkt[12:16])), vrid=pkt[ihl + 1], prio=pkt[ihl + 2])

    loop.add_reader(raw.fileno(), on_packet)
    ipr = AsyncIPRoute()
    await ipr.bind(groups=RTMGRP_IPV4_IFADDR)
    emit(t=time.monotonic(), ev="ready")
    while True:
        async for msg in ipr.get():
            kind = {"RTM_NEWADDR": "addr_add", "RTM_DELADDR": "addr_del"}.get(msg.get("event"))
            if kind:
                emit(t=time.monotonic(), ev=kind, addr=msg.get("IFA_ADDRESS"))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
