"""Typed, validated keepalived configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path

from ..auth_hmac import AuthHmac
from ..packet import AuthType
from .diagnostics import Diagnostic, Location

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface


@dataclass(frozen=True, slots=True)
class ScriptCommand:
    """A command line as keepalived runs it: split into argv, no shell; a notify script may
    name the user (and group) to run as after its quoted command line."""

    raw: str
    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class GlobalDefs:
    router_id: str | None = None
    script_user: str | None = None
    script_group: str | None = None
    enable_script_security: bool = False
    notify_fifo: str | None = None
    notify_fifo_user: str | None = None  # who owns the FIFO keepalived creates (default: the script user)
    notify_fifo_group: str | None = None
    notify_fifo_script: ScriptCommand | None = None
    vrrp_version: int = 2
    garp_master_delay: int = 5
    garp_master_repeat: int = 5
    garp_master_refresh: int = 0
    garp_master_refresh_repeat: int = 1
    check_unicast_src: bool = False
    skip_check_adv_addr: bool = False
    strict: bool = False
    lower_prio_no_advert: bool = False
    #: seconds after the start (vrrp_startup_delay) or after boot (vrrp_delay_after_boot) before
    #: any instance may become master; the longer one counts
    startup_delay: float = 0.0
    delay_after_boot: float = 0.0


@dataclass(frozen=True, slots=True)
class HaproxyProbe:
    """cloudvip's native HAProxy check: `show stat` over the runtime API socket."""

    socket: str
    backend: str | None = None
    frontend: str | None = None
    min_up: int = 1


@dataclass(frozen=True, slots=True)
class VrrpScript:
    """A `vrrp_script`: either a command (`script`) or a native HAProxy probe (`haproxy_socket`)."""

    name: str
    loc: Location
    script: ScriptCommand | None = None
    haproxy: HaproxyProbe | None = None
    interval: float = 1.0
    timeout: float | None = None  # None: the interval, as keepalived does
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None
    group: str | None = None
    init_fail: bool = False

    @property
    def effective_timeout(self) -> float:
        return self.interval if self.timeout is None else self.timeout


@dataclass(frozen=True, slots=True)
class TrackFile:
    name: str
    loc: Location
    path: str
    weight: int = 1
    reverse: bool = False
    init_file: int | None = None
    overwrite: bool = False


@dataclass(frozen=True, slots=True)
class TrackProcess:
    """keepalived's `vrrp_track_process`: up while the number of matching processes is within
    [quorum, quorum_max], after fork_delay (going up) or terminate_delay (going down)."""
    name: str
    loc: Location
    process: str  # the name (/proc/PID/stat's comm) or, with full_command, the command's argv[0]
    params: tuple[str, ...] = ()
    param_match: str = "none"  # none | exact | partial | initial
    full_command: bool = False
    weight: int = 0
    reverse: bool = False
    quorum: int = 1
    quorum_max: int | None = None  # None: unlimited
    fork_delay: float = 0.0
    terminate_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class TrackRef:
    """A `track_script` / `track_interface` / `track_file` entry of an instance or group.
    weight None: the tracked object's own weight (scripts, files) or 0 (interfaces)."""

    name: str
    loc: Location
    weight: int | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class VirtualAddress:
    interface: IPInterface
    loc: Location
    dev: str | None = None
    label: str | None = None
    scope: str | None = None
    brd: IPv4Address | None = None
    no_track: bool = False

    @property
    def address(self) -> IPAddress:
        return self.interface.ip


@dataclass(frozen=True, slots=True)
class UnicastPeer:
    address: IPAddress
    loc: Location
    min_ttl: int = 0
    max_ttl: int = 255


@dataclass(frozen=True, slots=True)
class Authentication:
    auth_type: AuthType
    password: bytes  # as sent: truncated to 8 bytes


@dataclass(frozen=True, slots=True)
class CloudEntry:
    key: str
    values: tuple[str, ...]
    loc: Location
    children: tuple[CloudEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class CloudBlock:
    """`cloud PROVIDER { ... }`: checked by the provider plugin, not by the core."""

    provider: str
    loc: Location
    entries: tuple[CloudEntry, ...] = ()

    def get(self, key: str) -> CloudEntry | None:
        return next((e for e in self.entries if e.key == key), None)


@dataclass(frozen=True, slots=True)
class Notifiers:
    master: ScriptCommand | None = None
    backup: ScriptCommand | None = None
    fault: ScriptCommand | None = None
    stop: ScriptCommand | None = None
    generic: ScriptCommand | None = None  # `notify`: called with TYPE NAME STATE PRIORITY
    master_rx_lower_pri: ScriptCommand | None = None  # a master heard a lower priority (instances only)

    def commands(self) -> list[ScriptCommand]:
        return [c for c in (self.master, self.backup, self.fault, self.stop, self.generic, self.master_rx_lower_pri)
                if c is not None]


@dataclass(frozen=True, slots=True)
class VrrpInstance:
    name: str
    loc: Location
    interface: str
    vrid: int
    priority: int = 100
    state_hint: str | None = None  # MASTER / BACKUP as written
    advert_int: float = 1.0
    version: int = 2
    auth: Authentication | None = None
    unicast_src_ip: IPAddress | None = None
    unicast_peers: tuple[UnicastPeer, ...] = ()
    unicast_ttl: int = 255
    nopreempt: bool = False
    preempt_delay: float = 0.0
    #: keepalived's strict mode (vrrp_strict, or the instance's strict_mode): no authentication,
    #: MASTER only as the address owner, no advert in answer to a lower-priority master
    strict: bool = False
    #: no advert in answer to a lower-priority master (keepalived's lower_prio_no_advert;
    #: None: vrrp_lower_prio_no_advert, or on in strict mode)
    lower_prio_no_advert: bool | None = None
    garp_master_delay: int = 5
    garp_master_repeat: int = 5
    garp_master_refresh: int = 0
    garp_master_refresh_repeat: int = 1
    vips: tuple[VirtualAddress, ...] = ()
    vips_excluded: tuple[VirtualAddress, ...] = ()
    track_scripts: tuple[TrackRef, ...] = ()
    track_interfaces: tuple[TrackRef, ...] = ()
    track_files: tuple[TrackRef, ...] = ()
    track_processes: tuple[TrackRef, ...] = ()
    dont_track_primary: bool = False
    notify: Notifiers = field(default_factory=Notifiers)
    cloud: CloudBlock | None = None
    skip_check_adv_addr: bool = False
    #: keepalived 2.4's auth_hmac trailer (also what the deprecated auth_key_file sets)
    auth_hmac: AuthHmac | None = None
    #: keepalived's no_virtual_ipaddress: an instance without VIPs on purpose (a cloud-only one)
    no_virtual_ipaddress: bool = False
    auth_key_file: Location | None = None  # where the deprecated cloudvip-only spelling was used

    @property
    def family(self) -> int:
        """4 or 6: the family VRRP runs over, from the VIPs (or the source address)."""
        for vip in self.vips:
            return vip.address.version
        if self.unicast_src_ip is not None:
            return self.unicast_src_ip.version
        return 4

    @property
    def advert_interval_cs(self) -> int:
        return round(self.advert_int * 100)


@dataclass(frozen=True, slots=True)
class SyncGroup:
    name: str
    loc: Location
    members: tuple[str, ...]
    notify: Notifiers = field(default_factory=Notifiers)
    track_scripts: tuple[TrackRef, ...] = ()
    track_interfaces: tuple[TrackRef, ...] = ()
    track_files: tuple[TrackRef, ...] = ()
    track_processes: tuple[TrackRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    files: tuple[Path, ...]
    global_defs: GlobalDefs
    scripts: dict[str, VrrpScript]
    track_files: dict[str, TrackFile]
    instances: tuple[VrrpInstance, ...]
    sync_groups: tuple[SyncGroup, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    track_processes: dict[str, TrackProcess] = field(default_factory=dict)
    #: set when `path` is a companion file: the keepalived.conf it completes
    keepalived_conf: Path | None = None

    def instance(self, name: str) -> VrrpInstance:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise KeyError(name)

    def notify_commands(self) -> list[ScriptCommand]:
        """Every notify script of the instances and sync groups."""
        notifiers = [i.notify for i in self.instances] + [g.notify for g in self.sync_groups]
        return [c for n in notifiers for c in n.commands()]

    def group_of(self, instance: str) -> SyncGroup | None:
        return next((g for g in self.sync_groups if instance in g.members), None)
