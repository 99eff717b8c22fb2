"""The VRRP router state machine of one instance, sans-IO.

RFC 5798 section 6.4 (and RFC 3768 for v2) plus keepalived's FAULT and STOP
states. Time is always passed in; `handle(event)` returns the actions the
runtime must carry out, and `deadline` is the one timer the runtime arms
(Adver_Timer as MASTER, Master_Down_Timer as BACKUP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address

from .packet import Advertisement, AuthType, DropReason, IPAddress
from .tracking import PRIORITY_OWNER, TrackState, effective_priority


class State(str, Enum):
    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"
    STOP = "STOP"


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """What we accept from one unicast peer (keepalived's min_ttl/max_ttl)."""

    min_ttl: int = 0
    max_ttl: int = 255


@dataclass(frozen=True, slots=True)
class RouterParams:
    """Everything the state machine needs of an instance's configuration."""

    name: str
    vrid: int
    priority: int
    primary_address: IPAddress  # ours, for the equal-priority tie-break and own-packet check
    vips: tuple[IPAddress, ...] = ()
    version: int = 2
    advert_interval_cs: int = 100
    auth_type: AuthType = AuthType.NONE
    auth_data: bytes = b""
    preempt: bool = True
    preempt_delay: float = 0.0
    peers: dict[IPAddress, PeerPolicy] = field(default_factory=dict)  # empty: multicast, unless `unicast`
    #: unicast even with no peer known yet (peers discovered in the cloud): then nobody is accepted
    unicast: bool = False
    check_addresses: bool = True  # keepalived's vrrp_skip_check_adv_addr turns this off
    #: keepalived's lower_prio_no_advert (on in strict mode): a master hearing a lower priority
    #: sends no advert in answer (it still re-announces, and a cloud provider re-checks the owner)
    lower_prio_no_advert: bool = False
    #: seconds after Start before the router may become master (keepalived's vrrp_startup_delay /
    #: vrrp_delay_after_boot: it listens, and follows a master it hears, meanwhile)
    startup_delay: float = 0.0


# ---- events -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Start:
    now: float


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    now: float
    advert: Advertisement
    src: IPAddress
    ttl: int = 255


@dataclass(frozen=True, slots=True)
class TimerFired:
    now: float


@dataclass(frozen=True, slots=True)
class TrackChanged:
    """A tracked object (script, interface, file, operator override) changed; None: no longer tracked."""

    now: float
    name: str
    state: TrackState | None


@dataclass(frozen=True, slots=True)
class Reconfigured:
    """New settings applied in place (a reload): priority, timers, preemption, peers, auth."""

    now: float
    params: RouterParams


@dataclass(frozen=True, slots=True)
class Shutdown:
    now: float


@dataclass(frozen=True, slots=True)
class GroupTransition:
    """A vrrp_sync_group member changed state: follow it to MASTER or BACKUP."""

    now: float
    state: State
    reason: str


Event = Start | AdvertReceived | TimerFired | TrackChanged | Reconfigured | Shutdown | GroupTransition


# ---- actions ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendAdvert:
    advert: Advertisement


@dataclass(frozen=True, slots=True)
class TakeVips:
    """Become the VIP holder: add addresses, announce them, move the cloud IP."""


@dataclass(frozen=True, slots=True)
class RefreshVips:
    """Already the holder: re-announce (gratuitous ARP / NA), as keepalived does when
    a lower-priority master shows up."""


@dataclass(frozen=True, slots=True)
class ReleaseVips:
    """Stop holding the VIPs on this host. `yield_to`: we stepped down for this higher-priority
    master (after a split brain, the cloud may still point to us: hand it over)."""

    yield_to: IPAddress | None = None


@dataclass(frozen=True, slots=True)
class Notify:
    old: State
    new: State
    priority: int
    reason: str


@dataclass(frozen=True, slots=True)
class ArmTimer:
    deadline: float | None


@dataclass(frozen=True, slots=True)
class Dropped:
    reason: DropReason
    detail: str


Action = SendAdvert | TakeVips | RefreshVips | ReleaseVips | Notify | ArmTimer | Dropped


# ---- timer rules ------------------------------------------------------------

def skew_time(version: int, priority: int, master_adver_int_cs: int) -> float:
    """Skew_Time in seconds: v2 (256-Priority)/256 s; v3 ((256-Priority) x
    Master_Adver_Interval)/256 centiseconds (kept exact, as keepalived 2.2 times it)."""
    if version == 2:
        return (256 - priority) / 256
    return (256 - priority) * master_adver_int_cs / 256 / 100


def master_down_interval(version: int, priority: int, master_adver_int_cs: int) -> float:
    """Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time, in seconds."""
    return 3 * master_adver_int_cs / 100 + skew_time(version, priority, master_adver_int_cs)


def _addr_key(addr: IPAddress) -> tuple[int, int]:
    return (4 if isinstance(addr, IPv4Address) else 6, int(addr))


#: sources of lower-priority adverts remembered for the once-per-interval answer (older ones pruned)
MAX_ANSWERED = 64


class Router:
    """One VRRP instance. Feed events to `handle`; carry out the returned actions."""

    def __init__(self, params: RouterParams) -> None:
        self.params = params
        self.state = State.INIT
        self.deadline: float | None = None
        self.master_adver_int_cs = params.advert_interval_cs
        self.master_address: IPAddress | None = None
        self.master_priority: int | None = None
        self.tracks: dict[str, TrackState] = {}
        self._last_advert_at: float | None = None
        self._preempt_until: float | None = None
        self._resigned: str | None = None  # why the down timer was shortened to Skew_Time
        self._no_master_before: float | None = None  # the startup delay's end, while it runs
        #: when we last answered each lower-priority master (at most once per advert interval)
        self._answered: dict[IPAddress, float] = {}

    # -- derived values --
    @property
    def priority(self) -> int:
        """Effective priority: base plus tracker weights, clamped (owner stays 255)."""
        return effective_priority(self.params.priority, [t.delta for t in self.tracks.values()])

    @property
    def faulted(self) -> list[str]:
        return sorted(name for name, t in self.tracks.items() if t.fault)

    @property
    def skew_time(self) -> float:
        return skew_time(self.params.version, self.priority, self.master_adver_int_cs)

    @property
    def master_down_interval(self) -> float:
        return master_down_interval(self.params.version, self.priority, self.master_adver_int_cs)

    @property
    def advert_interval(self) -> float:
        return self.params.advert_interval_cs / 100

    def advert(self, priority: int | None = None) -> Advertisement:
        p = self.params
        return Advertisement(p.version, p.vrid, self.priority if priority is None else priority,
                             p.vips, p.advert_interval_cs, p.auth_type, p.auth_data)

    # -- dispatch --
    def handle(self, event: Event) -> list[Action]:
        match event:
            case Start(now):
                return self._start(now)
            case AdvertReceived(now, advert, src, ttl):
                return self._receive(now, advert, src, ttl)
            case TimerFired(now):
                return self._timer(now)
            case TrackChanged(now, name, state):
                return self._track(now, name, state)
            case Reconfigured(now, params):
                return self._reconfigure(now, params)
            case Shutdown(now):
                return self._shutdown(now)
            case GroupTransition(now, state, reason):
                return self._follow_group(now, state, reason)
        raise TypeError(f"not an event: {event!r}")

    # -- helpers that build action lists --
    def _arm(self, deadline: float | None) -> ArmTimer:
        self.deadline = deadline
        return ArmTimer(deadline)

    def _send(self, priority: int | None = None) -> SendAdvert:
        return SendAdvert(self.advert(priority))

    def _to_master(self, now: float, reason: str) -> list[Action]:
        old, self.state = self.state, State.MASTER
        self._resigned = None
        self.master_address, self.master_priority = self.params.primary_address, self.priority
        self._preempt_until = None
        return [self._send(), TakeVips(), Notify(old, State.MASTER, self.priority, reason),
                self._arm(now + self.advert_interval)]

    def _to_backup(self, now: float, reason: str, yield_to: IPAddress | None = None) -> list[Action]:
        old, self.state = self.state, State.BACKUP
        self._resigned = None
        actions: list[Action] = [ReleaseVips(yield_to)] if old is State.MASTER else []
        actions.append(Notify(old, State.BACKUP, self.priority, reason))
        actions.append(self._arm(now + self.master_down_interval))
        return actions

    def _to_fault(self, reason: str) -> list[Action]:
        old, self.state = self.state, State.FAULT
        actions: list[Action] = []
        if old is State.MASTER:
            # priority 0 lets the backup take over after Skew_Time, not Master_Down_Interval
            actions += [self._send(0), ReleaseVips()]
        actions += [Notify(old, State.FAULT, self.priority, reason), self._arm(None)]
        return actions

    # -- event handlers --
    def _start(self, now: float) -> list[Action]:
        if self.state not in (State.INIT, State.STOP):
            return []
        self._last_advert_at = now
        self.master_adver_int_cs = self.params.advert_interval_cs
        self.master_address = self.master_priority = None
        self._preempt_until = now + self.params.preempt_delay if self.params.preempt_delay else None
        self._no_master_before = now + self.params.startup_delay if self.params.startup_delay else None
        if self.faulted:
            return self._to_fault(f"tracked {', '.join(self.faulted)} failed at start")
        if self.params.priority == PRIORITY_OWNER and self._no_master_before is None:
            return self._to_master(now, "address owner (priority 255)")
        # keepalived enters BACKUP first even with `state MASTER` and waits its own down timer
        actions = self._to_backup(now, "init")
        if self._no_master_before is not None and self.deadline is not None:  # its down timer, or the delay's end
            actions[-1] = self._arm(max(self.deadline, self._no_master_before))
        return actions

    def _shutdown(self, now: float) -> list[Action]:
        if self.state in (State.INIT, State.STOP):
            return []
        old = self.state
        actions: list[Action] = [self._send(0), ReleaseVips()] if old is State.MASTER else []
        self.state = State.STOP
        actions += [Notify(old, State.STOP, self.priority, "shutdown"), self._arm(None)]
        return actions

    def _timer(self, now: float) -> list[Action]:
        if self.deadline is None or now < self.deadline:
            return []  # stale or early wake-up
        if self.state is State.MASTER:
            return [self._send(), self._arm(now + self.advert_interval)]
        if self.state is State.BACKUP:
            if self._no_master_before is not None:
                if now < self._no_master_before:  # the startup delay: no mastership yet
                    return [self._arm(self._no_master_before)]
                self._no_master_before = None
            if self._resigned is not None:
                return self._to_master(now, self._resigned)
            silent = now - (self._last_advert_at if self._last_advert_at is not None else now)
            return self._to_master(now, f"master down: no advert for {silent:.2f} s")
        self.deadline = None
        return []

    def _reconfigure(self, now: float, params: RouterParams) -> list[Action]:
        """No transition of its own: a master advertises a new priority at once (a better backup
        may preempt, as after a tracked change); the new interval counts from the next advert."""
        before_prio = self.priority
        self.params = params
        if self.state is State.MASTER and self.priority != before_prio:
            return [self._send(), self._arm(now + self.advert_interval)]
        return []

    def _track(self, now: float, name: str, state: TrackState | None) -> list[Action]:
        before_prio = self.priority
        if state is None:
            self.tracks.pop(name, None)
        else:
            self.tracks[name] = state
        after_prio, faulted = self.priority, self.faulted
        if self.state in (State.INIT, State.STOP):
            return []
        if faulted and self.state is not State.FAULT:
            return self._to_fault(f"tracked {', '.join(faulted)} failed")
        if not faulted and self.state is State.FAULT:
            if self.params.priority == PRIORITY_OWNER:
                return self._to_master(now, "fault cleared, address owner")
            self.master_adver_int_cs = self.params.advert_interval_cs
            self._last_advert_at = now
            return self._to_backup(now, f"fault cleared ({name} recovered)")
        if self.state is State.MASTER and after_prio != before_prio:
            # advertise the new priority at once so a better backup can preempt
            return [self._send(), self._arm(now + self.advert_interval)]
        return []

    def _follow_group(self, now: float, state: State, reason: str) -> list[Action]:
        if state is State.MASTER and self.state is State.BACKUP:
            return self._to_master(now, reason)
        if state is State.BACKUP and self.state is State.MASTER:
            return self._to_backup(now, reason)
        return []

    def validate(self, advert: Advertisement, src: IPAddress, ttl: int) -> Dropped | None:
        """keepalived's acceptance rules for an advert that decoded cleanly."""
        p = self.params
        if src == p.primary_address:
            return Dropped(DropReason.OWN_PACKET, f"own advert from {src}")
        if p.peers or p.unicast:
            policy = p.peers.get(src)
            if policy is None:
                return Dropped(DropReason.NOT_A_PEER, f"{src} is not a unicast_peer" if p.peers
                               else f"{src}: no peer is known yet (discovery), none accepted")
            if not policy.min_ttl <= ttl <= policy.max_ttl:
                return Dropped(DropReason.BAD_TTL,
                               f"TTL {ttl} outside {policy.min_ttl}..{policy.max_ttl} for {src}")
        elif ttl != 255:
            return Dropped(DropReason.BAD_TTL, f"multicast advert with TTL {ttl}, must be 255")
        if advert.vrid != p.vrid:
            return Dropped(DropReason.WRONG_VRID, f"VRID {advert.vrid}, ours is {p.vrid}")
        if advert.version != p.version:
            return Dropped(DropReason.BAD_VERSION, f"VRRPv{advert.version}, we run v{p.version}")
        if p.version == 2:
            if advert.auth_type != p.auth_type:
                return Dropped(DropReason.BAD_AUTH,
                               f"auth type {int(advert.auth_type)}, expected {int(p.auth_type)}")
            if p.auth_type is AuthType.PASS and advert.auth_data != p.auth_data.ljust(8, b"\0")[:8]:
                return Dropped(DropReason.BAD_AUTH, "password mismatch")
            if advert.interval_cs != p.advert_interval_cs:
                return Dropped(DropReason.INTERVAL_MISMATCH,
                               f"advert interval {advert.interval:g} s, ours is {self.advert_interval:g} s")
        if p.check_addresses and (len(advert.addresses) != len(p.vips)
                                  or set(advert.addresses) != set(p.vips)):
            return Dropped(DropReason.ADDRESS_MISMATCH,
                           f"advert lists {[str(a) for a in advert.addresses]}, ours {[str(a) for a in p.vips]}")
        if self.state not in (State.BACKUP, State.MASTER):
            return Dropped(DropReason.NOT_ACCEPTING, f"instance is {self.state.value}")
        return None

    def _receive(self, now: float, advert: Advertisement, src: IPAddress, ttl: int) -> list[Action]:
        dropped = self.validate(advert, src, ttl)
        if dropped is not None:
            return [dropped]
        if self.state is State.BACKUP:
            return self._receive_as_backup(now, advert, src)
        return self._receive_as_master(now, advert, src)

    def _may_preempt(self, now: float) -> bool:
        if not self.params.preempt:
            return False
        if not self.params.preempt_delay:
            return True
        if self._preempt_until is None:  # first sight of a lower-priority master
            self._preempt_until = now + self.params.preempt_delay
        return now >= self._preempt_until

    def _receive_as_backup(self, now: float, advert: Advertisement, src: IPAddress) -> list[Action]:
        if advert.priority == 0:
            # the master resigned: take over after Skew_Time
            self.master_address, self.master_priority = src, 0
            self._resigned = f"master {src} resigned (priority 0)"
            return [self._arm(now + self.skew_time)]
        mine = self.priority
        if advert.priority >= mine or not self._may_preempt(now):
            if advert.priority >= mine and self._preempt_until is not None and now >= self._preempt_until:
                self._preempt_until = None  # the delay restarts at the next lower-priority master
            self.master_address, self.master_priority = src, advert.priority
            if self.params.version == 3:
                self.master_adver_int_cs = advert.interval_cs
            self._last_advert_at = now
            self._resigned = None
            return [self._arm(now + self.master_down_interval)]
        return []  # lower priority and we preempt: let Master_Down_Timer run out

    def _receive_as_master(self, now: float, advert: Advertisement, src: IPAddress) -> list[Action]:
        if advert.priority == 0:
            return [self._send(), self._arm(now + self.advert_interval)]
        mine = self.priority
        if advert.priority > mine or (advert.priority == mine
                                      and _addr_key(src) > _addr_key(self.params.primary_address)):
            self.master_address, self.master_priority = src, advert.priority
            if self.params.version == 3:
                self.master_adver_int_cs = advert.interval_cs
            self._last_advert_at = now
            why = "higher priority" if advert.priority > mine else "equal priority, higher address"
            return self._to_backup(now, f"{why} master {src} (priority {advert.priority})", yield_to=src)
        # keepalived re-advertises at once and re-announces the VIPs; once per advert interval per
        # source, so that a misbehaving or spoofed peer's flood costs no adverts and no cloud reads
        last = self._answered.get(src)
        if last is not None and now - last < self.advert_interval:
            return []
        if len(self._answered) >= MAX_ANSWERED:
            self._answered = {a: t for a, t in self._answered.items() if now - t < self.advert_interval}
        self._answered[src] = now
        if self.params.lower_prio_no_advert:
            return [RefreshVips()]
        return [self._send(), RefreshVips()]
