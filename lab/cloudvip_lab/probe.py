"""Run inside a node's namespace: print, as JSON lines with CLOCK_MONOTONIC times (the same
clock in every namespace), each VRRP advert received and each address added or removed.

    ip netns exec NS python -m cloudvip_lab.probe

`Probe` starts one from outside and collects its events (bench/ and the tests use it).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, Callable

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR

if TYPE_CHECKING:
    from .topology import Node, Topology


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


class Probe:
    """A probe process in a node's namespace, its events collected by a thread."""

    def __init__(self, topo: "Topology", node: "Node") -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(topo.exec_args(node, sys.executable, "-m", "cloudvip_lab.probe"),
                                     stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        if not self.wait(lambda e: e["ev"] == "ready", 0, 10):
            self.close()
            raise RuntimeError("probe did not start")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def wait(self, match: Callable[[dict[str, Any]], bool], since: float, timeout: float) -> dict[str, Any] | None:
        """The newest event after `since` that matches, waiting up to `timeout`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                for e in reversed(self.events):
                    if e["t"] < since:
                        break
                    if match(e):
                        return dict(e)
            time.sleep(0.001)
        return None

    def last(self, match: Callable[[dict[str, Any]], bool], before: float) -> dict[str, Any] | None:
        with self.lock:
            for e in reversed(self.events):
                if e["t"] < before and match(e):
                    return dict(e)
        return None

    def adverts(self, src: str, since: float, until: float) -> list[float]:
        with self.lock:
            return [e["t"] for e in self.events
                    if e["ev"] == "advert" and e["src"] == src and since <= e["t"] <= until]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
