"""One running VRRP instance: the state machine wired to a socket, a timer and a mover.

Thin on purpose: every decision is the state machine's; this only carries out
its actions and feeds it events with the loop's monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from . import auth_state
from .auth_hmac import AuthHmac, Verifier, sign
from .config.model import VrrpInstance
from .logs import worth_logging
from .packet import AuthType, IPAddress
from .state_machine import (Action, AdvertReceived, ArmTimer, Dropped, Event, Notify, PeerPolicy, RefreshVips,
                            ReleaseVips, Router, RouterParams, SendAdvert, Shutdown, Start, State, TakeVips, TimerFired,
                            Reconfigured, TrackChanged)
from .tracking import TrackState
from .transport import Channel, Received
from .vip_mover import VipMover


def router_params(inst: VrrpInstance, local: IPAddress, extra_peers: Sequence[IPAddress] = (),
                  discovering: bool = False, startup_delay: float = 0.0) -> RouterParams:
    """The state machine's view of a configured instance (plus peers a provider discovered;
    `discovering`: peers come from the cloud, so it is unicast even before any is known)."""
    peers = {p.address: PeerPolicy(p.min_ttl, p.max_ttl) for p in inst.unicast_peers}
    for addr in extra_peers:
        peers.setdefault(addr, PeerPolicy())
    return RouterParams(
        name=inst.name, vrid=inst.vrid, priority=inst.priority, primary_address=local,
        vips=tuple(v.address for v in inst.vips), version=inst.version,
        advert_interval_cs=inst.advert_interval_cs,
        auth_type=inst.auth.auth_type if inst.auth else AuthType.NONE,
        auth_data=inst.auth.password if inst.auth else b"",
        preempt=not inst.nopreempt, preempt_delay=inst.preempt_delay,
        peers=peers, unicast=bool(inst.unicast_peers) or discovering,
        check_addresses=not inst.skip_check_adv_addr, lower_prio_no_advert=bool(inst.lower_prio_no_advert),
        startup_delay=startup_delay)


@dataclass(frozen=True, slots=True)
class Transition:
    at: float  # wall clock
    note: Notify


NotifyHook = Callable[["InstanceRuntime", Notify], None]


class InstanceRuntime:
    def __init__(self, config: VrrpInstance, params: RouterParams, channel: Channel, mover: VipMover,
                 log: logging.Logger, on_notify: NotifyHook | None = None) -> None:
        self.config, self.channel, self.mover, self.log = config, channel, mover, log
        self.router = Router(params)
        self.counters: Counter[str] = Counter()
        self.transitions: deque[Transition] = deque(maxlen=32)
        self._destinations: list[IPAddress] = []
        self.set_destinations(params)
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._on_notify = on_notify
        #: a master heard a lower priority (keepalived's notify_master_rx_lower_pri event)
        self.on_lower_priority: Callable[[InstanceRuntime], None] | None = None
        self.auth: Verifier | None = None
        self._auth_state: Path | None = None  # where the replay state survives a restart
        self._auth_saved_at = float("-inf")
        self._heard_at: float | None = None  # the last advert accepted from another router
        self.replace_mover(mover)

    @property
    def name(self) -> str:
        return self.config.name

    def now(self) -> float:
        return self._loop.time()

    def set_peers(self, params: RouterParams) -> None:
        """New peer set (discovered in the cloud): who we accept adverts from and send them to."""
        self.router.params = params
        self.set_destinations(params)

    def set_destinations(self, params: RouterParams) -> None:
        self._destinations = list(params.peers) or ([] if params.unicast else [self.channel.group])

    def handle(self, event: Event) -> None:
        self.apply(self.router.handle(event))

    def start(self) -> None:
        self.channel.handlers[self.config.vrid] = self.on_received
        self.handle(Start(self.now()))

    def shutdown(self) -> None:
        self.handle(Shutdown(self.now()))
        self.save_auth_state(force=True)
        if self.channel.handlers.get(self.config.vrid) == self.on_received:
            del self.channel.handlers[self.config.vrid]

    def track(self, name: str, state: TrackState) -> None:
        if self.router.tracks.get(name) != state:
            self.handle(TrackChanged(self.now(), name, state))

    def untrack(self, name: str) -> None:
        if name in self.router.tracks:
            self.handle(TrackChanged(self.now(), name, None))

    def reconfigure(self, config: VrrpInstance, params: RouterParams) -> None:
        """A reload's new settings, in place: no restart, no priority-0 advert, no failover."""
        self.config = config
        self.mover.provider.ctx.instance = config
        self.set_destinations(params)
        self.handle(Reconfigured(self.now(), params))

    def replace_mover(self, mover: VipMover) -> None:
        """A new provider (its settings changed on reload) behind a new mover, same VRRP state."""
        self.mover = mover
        mover.contested = self.hearing_another_master
        mover.current_master = self.current_master

    def set_auth(self, cfg: AuthHmac | None, state: Path | None = None) -> None:
        """auth_hmac (None: off); new settings keep the sequence and replay state, which `state`
        (a file) keeps across restarts too."""
        if cfg is None:
            self.auth = None
        elif self.auth is None:
            self.auth = Verifier(cfg, unicast=bool(self.router.params.peers) or self.router.params.unicast)
            self._auth_state = state
            if state is not None:
                self.auth.sent, self.auth.last = auth_state.load(state)
        else:
            self.auth.cfg = cfg

    def save_auth_state(self, force: bool = False) -> None:
        """At most once every SAVE_EVERY s (and when forced, at shutdown)."""
        if self.auth is None or self._auth_state is None:
            return
        now = self.now()
        if not force and now - self._auth_saved_at < auth_state.SAVE_EVERY:
            return
        self._auth_saved_at = now
        try:
            auth_state.save(self._auth_state, self.auth.sent, self.auth.last)
        except OSError as exc:
            self.counters["auth_state_errors"] += 1
            if worth_logging(self.counters["auth_state_errors"]):
                self.log.warning("%s: cannot save the advert authentication state: %s", self.name, exc)

    def _signer(self) -> Callable[[bytes], bytes] | None:
        """What signs one advert's copies (every destination gets the same sequence and HMAC, as
        keepalived signs once per advertisement; only the checksum differs, which the HMAC skips)."""
        auth = self.auth
        if auth is None or not auth.cfg.sends:
            return None
        seq = auth.next_sequence(time.time_ns())
        self.save_auth_state()
        return lambda vrrp: sign(auth.cfg, self.channel.local, vrrp, seq)

    def on_received(self, rx: Received) -> None:
        self.counters["adverts_received"] += 1
        if self.auth is not None or rx.trailer is not None:
            reason = (self.auth.check(rx.src, rx.vrrp, rx.trailer, time.time_ns()) if self.auth is not None
                      else "auth_unexpected")
            if reason is not None:
                self._drop(reason, f"{rx.src}: {reason.replace('_', ' ')}")
                return
            self.save_auth_state()
        actions = self.router.handle(AdvertReceived(self.now(), rx.advert, rx.src, rx.ttl))
        if not any(isinstance(a, Dropped) for a in actions):
            self._heard_at = self.now()
        self.apply(actions)

    def current_master(self) -> IPAddress | None:
        """The master we follow as a backup (None: not a backup, or the master resigned)."""
        r = self.router
        return r.master_address if r.state is State.BACKUP and r.master_priority else None

    def hearing_another_master(self) -> bool:
        """Has an advert (only masters send them) been accepted within Master_Down_Interval?"""
        return self._heard_at is not None and self.now() - self._heard_at < self.router.master_down_interval

    def _on_timer(self) -> None:
        self._timer = None
        # asyncio may run a timer a hair before its deadline; the deadline is what we armed
        deadline = self.router.deadline
        self.handle(TimerFired(max(self.now(), deadline if deadline is not None else 0.0)))

    def apply(self, actions: list[Action]) -> None:
        for act in actions:
            if isinstance(act, SendAdvert):
                sign = self._signer()
                for dst in self._destinations:
                    if self.channel.send(act.advert, dst, sign=sign):
                        self.counters["adverts_sent"] += 1
                    else:
                        self.counters["send_errors"] += 1
            elif isinstance(act, ArmTimer):
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                if act.deadline is not None:
                    self._timer = self._loop.call_at(act.deadline, self._on_timer)
            elif isinstance(act, TakeVips):
                self.mover.want(True)
            elif isinstance(act, ReleaseVips):
                self.mover.want(False, yield_to=act.yield_to)
            elif isinstance(act, RefreshVips):
                self.mover.announce()
                if self.on_lower_priority is not None:
                    self.on_lower_priority(self)
            elif isinstance(act, Notify):
                self._notify(act)
            elif isinstance(act, Dropped):
                self._dropped(act)

    def _notify(self, note: Notify) -> None:
        self.counters["transitions"] += 1
        self.transitions.append(Transition(time.time(), note))
        self.log.info("%s: %s -> %s (%s)", self.name, note.old.value, note.new.value, note.reason)
        if self._on_notify is not None:
            self._on_notify(self, note)

    def _dropped(self, drop: Dropped) -> None:
        self._drop(drop.reason.value, drop.detail)

    def _drop(self, reason: str, detail: str) -> None:
        key = f"drop_{reason}"
        self.counters[key] += 1
        n = self.counters[key]
        if worth_logging(n):
            self.log.info("%s: ignoring advert: %s (%d so far)", self.name, detail, n)
