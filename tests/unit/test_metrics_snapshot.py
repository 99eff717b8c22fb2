"""A scrape (prometheus-client's HTTP thread) while the event loop changes what it reads (a
failover storm: transitions, new drop reasons, new provider operations) sees a consistent
snapshot, never "dictionary changed size during iteration"."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from types import SimpleNamespace
from typing import Any

from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest

from cloudvip.metrics import RuntimeCollector
from cloudvip.state_machine import State
from cloudvip.vip_mover import MoverStats

SCRAPES = 300


async def storm(on_loop: bool) -> list[BaseException]:
    rt: Any = SimpleNamespace(router=SimpleNamespace(state=State.MASTER, priority=100,
                                                     params=SimpleNamespace(priority=100)),
                              counters=Counter(), channel=SimpleNamespace(drops={}))
    mover: Any = SimpleNamespace(stats=MoverStats(), actual=True, provider=SimpleNamespace(name="fake"))
    registry = CollectorRegistry()
    registry.register(RuntimeCollector(lambda: {"VI_1": rt}, lambda: {"VI_1": mover},
                                       asyncio.get_running_loop() if on_loop else None))
    errors: list[BaseException] = []
    done = threading.Event()

    def scraper() -> None:
        for _ in range(SCRAPES):
            try:
                generate_latest(registry)
            except Exception as exc:  # what the HTTP thread would answer a scrape with
                errors.append(exc)
        done.set()

    threading.Thread(target=scraper, daemon=True).start()
    n = 0
    while not done.is_set():  # the event loop's own work: changes between two awaits
        n += 1
        for i in range(50):  # entries come and go (the sizes change), their number stays bounded
            if n % 2:
                rt.counters[f"drop_reason{i}"] += 1
                mover.stats.observe(f"op{i}", 0.01)
            else:
                del rt.counters[f"drop_reason{i}"]
                del mover.stats.latency[f"op{i}"]
        rt.router.state = State.BACKUP if n % 2 else State.MASTER
        await asyncio.sleep(0)
    return errors


def storm_while_scraping(on_loop: bool) -> list[BaseException]:
    """The storm and the scrapes in two threads, switching between them as often as CPython can
    (a busy host), for SCRAPES scrapes."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        return asyncio.run(storm(on_loop))
    finally:
        sys.setswitchinterval(interval)


def test_a_scrape_during_a_storm_reads_a_consistent_snapshot() -> None:
    assert storm_while_scraping(on_loop=True) == []


def test_without_the_loop_the_storm_does_break_a_scrape() -> None:
    """The race the snapshot removes is real (this is what the HTTP thread met before)."""
    errors = storm_while_scraping(on_loop=False)
    assert any("changed size during iteration" in str(e) for e in errors), errors[:3]
