"""Prometheus metrics (prometheus-client), off unless `--metrics [ADDR:]PORT` is given; bound
to 127.0.0.1 unless an address is. Read from the live runtime at scrape time, so nothing is
counted twice: the scrape (prometheus-client's HTTP thread) has the event loop take the snapshot
between two of its callbacks, so it never sees a dict the loop is changing (a transition, a
new drop reason, a new provider operation)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from .state_machine import State
from .vip_mover import LATENCY_BUCKETS

if TYPE_CHECKING:
    from .instance import InstanceRuntime
    from .vip_mover import VipMover



def parse_listen(spec: str) -> tuple[str, int]:
    """'9723' -> ('127.0.0.1', 9723); 'ADDR:PORT' as given ('[::1]:9723' for IPv6)."""
    host, sep, port = spec.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics {spec!r}: expected PORT or ADDR:PORT")
    return host, int(port)


SCRAPE_TIMEOUT = 5.0  # seconds a scrape waits for the event loop (a wedged loop: the watchdog's)
Family = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily


class RuntimeCollector(Collector):
    def __init__(self, instances: Callable[[], dict[str, InstanceRuntime]],
                 movers: Callable[[], dict[str, VipMover]], loop: asyncio.AbstractEventLoop | None = None,
                 waiting: Callable[[], Mapping[str, object]] = dict) -> None:
        """instances: the VRRP runtimes (the agent; none for the companion); movers: every
        instance's VipMover (the agent's or the companion's); loop: the event loop that owns
        them (None: collect in the caller's thread, for a caller that is that loop's); waiting:
        the instances whose provider has not started (FAULT)."""
        self.instances, self.movers, self.loop, self.waiting = instances, movers, loop, waiting

    def collect(self) -> Iterator[Family]:
        if self.loop is None:
            return iter(self.snapshot())
        return iter(asyncio.run_coroutine_threadsafe(self._on_loop(), self.loop).result(SCRAPE_TIMEOUT))

    async def _on_loop(self) -> list[Family]:
        return self.snapshot()

    def snapshot(self) -> list[Family]:
        return [*self._vrrp(self.instances(), list(self.waiting())), *self._provider(self.movers())]

    def _vrrp(self, runtimes: dict[str, InstanceRuntime],
              waiting: list[str]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = GaugeMetricFamily("cloudvip_state", "1 for the instance's current VRRP state",
                                  labels=["instance", "state"])
        prio = GaugeMetricFamily("cloudvip_priority", "VRRP priority", labels=["instance", "kind"])
        counters = {key: CounterMetricFamily(f"cloudvip_{key}", doc, labels=["instance"]) for key, doc in (
            ("transitions", "state transitions"), ("adverts_sent", "adverts sent"),
            ("adverts_received", "adverts received (valid or not)"))}
        drops = CounterMetricFamily("cloudvip_packets_dropped", "adverts dropped, by reason",
                                    labels=["instance", "reason"])
        for name, rt in runtimes.items():
            for s in State:
                state.add_metric([name, s.value], 1.0 if rt.router.state is s else 0.0)
            prio.add_metric([name, "effective"], rt.router.priority)
            prio.add_metric([name, "base"], rt.router.params.priority)
            for key, family in counters.items():
                family.add_metric([name], rt.counters.get(key, 0))
            for key, n in rt.counters.items():
                if key.startswith("drop_"):
                    drops.add_metric([name, key[5:]], n)
            for reason, n in rt.channel.drops.items():  # decoded before any instance saw them
                drops.add_metric([name, reason], n)
        for name in waiting:  # its provider has not started: out of the election
            for s in State:
                state.add_metric([name, s.value], 1.0 if s is State.FAULT else 0.0)
        yield state
        yield prio
        yield from counters.values()
        yield drops

    def _provider(self, movers: dict[str, VipMover]) -> Iterator[GaugeMetricFamily | CounterMetricFamily |
                                                                 HistogramMetricFamily]:
        held = GaugeMetricFamily("cloudvip_vip_held", "1 while this node holds the VIP (as far as it knows)",
                                 labels=["instance"])
        latency = HistogramMetricFamily("cloudvip_provider_call_seconds", "provider call duration (each try)",
                                        labels=["instance", "provider", "op"])
        errors = CounterMetricFamily("cloudvip_provider_errors", "failed provider calls", labels=["instance", "op"])
        split = CounterMetricFamily("cloudvip_split_brain", "ownership checks that found a peer holding our VIP",
                                    labels=["instance"])
        reasserts = CounterMetricFamily("cloudvip_reasserts", "VIP re-asserted after a change behind our back",
                                        labels=["instance"])
        for name, mover in movers.items():
            stats = mover.stats
            held.add_metric([name], 1.0 if mover.actual else 0.0)
            for op, (counts, total) in stats.latency.items():
                buckets = [("+Inf" if b == float("inf") else str(b), float(n))
                           for b, n in zip(LATENCY_BUCKETS, counts, strict=True)]
                latency.add_metric([name, mover.provider.name, op], buckets, sum_value=total)
            for op, n in stats.errors.items():
                errors.add_metric([name, op], n)
            split.add_metric([name], stats.split_brain)
            reasserts.add_metric([name], stats.reasserts)
        yield held
        yield latency
        yield errors
        yield split
        yield reasserts


def serve(spec: str, collector: RuntimeCollector) -> None:
    """Expose /metrics on `spec` (a thread of prometheus-client's)."""
    from prometheus_client import start_http_server

    host, port = parse_listen(spec)
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)  # process_open_fds, process_resident_memory_bytes, ...
    start_http_server(port, addr=host, registry=registry)
