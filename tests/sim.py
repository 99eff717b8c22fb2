"""A discrete-event network of state machines: adverts travel through the real codec,
with a fake clock, loss, crashes (SIGKILL: silence) and graceful shutdowns."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from cloudvip.packet import AuthType, decode, encode
from cloudvip.state_machine import (AdvertReceived, ArmTimer, Router, RouterParams, SendAdvert, Shutdown,
                                    Start, State, TimerFired)

VIP = IPv4Address("198.51.100.100")
LATENCY = 0.0005


def node_address(i: int) -> IPv4Address:
    return IPv4Address(f"198.51.100.{11 + i}")


@dataclass(order=True)
class _Ev:
    at: float
    seq: int
    kind: str = field(compare=False)
    node: int = field(compare=False)
    payload: object = field(compare=False, default=None)


class Network:
    def __init__(self, priorities: list[int], *, version: int = 2, interval_cs: int = 100,
                 preempt: bool = True, seed: int = 0) -> None:
        self.routers = [Router(RouterParams(
            name="VI_1", vrid=51, priority=p, primary_address=node_address(i), vips=(VIP,), version=version,
            advert_interval_cs=interval_cs, auth_type=AuthType.PASS if version == 2 else AuthType.NONE,
            auth_data=b"pw" if version == 2 else b"", preempt=preempt)) for i, p in enumerate(priorities)]
        self.alive = [False] * len(priorities)
        self.queue: list[_Ev] = []
        self.seq = 0
        self.now = 0.0
        self.loss = 0.0
        self.rng = random.Random(seed)
        self.masters_log: list[tuple[float, int]] = []  # (time, node) each time someone becomes master

    def _push(self, at: float, kind: str, node: int, payload: object = None) -> None:
        self.seq += 1
        heapq.heappush(self.queue, _Ev(at, self.seq, kind, node, payload))

    def schedule(self, at: float, kind: str, node: int) -> None:
        """kind: start | kill | shutdown"""
        self._push(at, kind, node)

    def _apply(self, i: int, actions: list) -> None:
        for act in actions:
            if isinstance(act, ArmTimer) and act.deadline is not None:
                self._push(act.deadline, "timer", i)
            elif isinstance(act, SendAdvert):
                src = node_address(i)
                for j in range(len(self.routers)):
                    if j != i and self.rng.random() >= self.loss:
                        self._push(self.now + LATENCY, "rx", j, (encode(act.advert, src, node_address(j)), src))
        if self.routers[i].state is State.MASTER and (not self.masters_log or self.masters_log[-1][1] != i):
            self.masters_log.append((self.now, i))

    def run_until(self, t_end: float) -> None:
        while self.queue and self.queue[0].at <= t_end:
            ev = heapq.heappop(self.queue)
            self.now = ev.at
            i, r = ev.node, self.routers[ev.node]
            if ev.kind == "start":
                if not self.alive[i]:
                    self.alive[i] = True
                    if r.state is not State.INIT:
                        r.__init__(r.params)  # a restarted process is a fresh state machine
                    self._apply(i, r.handle(Start(self.now)))
            elif ev.kind == "kill":
                self.alive[i] = False
            elif ev.kind == "shutdown":
                if self.alive[i]:
                    self._apply(i, r.handle(Shutdown(self.now)))
                    self.alive[i] = False
            elif not self.alive[i]:
                continue
            elif ev.kind == "timer":
                self._apply(i, r.handle(TimerFired(self.now)))
            elif ev.kind == "rx":
                data, src = ev.payload  # type: ignore[misc]
                adv = decode(data, src, node_address(i))
                self._apply(i, r.handle(AdvertReceived(self.now, adv, src)))
        self.now = t_end

    def masters(self) -> list[int]:
        return [i for i, r in enumerate(self.routers) if self.alive[i] and r.state is State.MASTER]

    def expected_masters(self) -> list[int]:
        """The RFC's choice: the highest priority. Between equals, the address only decides
        when two masters meet; a backup never preempts an equal-priority master."""
        alive = [i for i in range(len(self.routers)) if self.alive[i]]
        top = max(self.routers[i].priority for i in alive)
        return [i for i in alive if self.routers[i].priority == top]
