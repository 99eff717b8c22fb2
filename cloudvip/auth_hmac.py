"""keepalived 2.4's `auth_hmac`: an HMAC-SHA256 trailer after the VRRP message, wire-compatible
with keepalived 2.4.3 (draft-cassen-vrrp-auth-hmac as keepalived implements it). Pure: bytes in,
bytes or a drop reason out; the caller passes the clock.

Trailer (28 bytes, after the VRRP message, outside its checksum):
    ext_type (1: HMAC-SHA256/128) | key id | reserved (0, 2 bytes) | sec (u32, UTC) |
    subsec (u16, 1/65536 s) | ctr (u16) | the first 16 bytes of the HMAC
The 64-bit sequence is sec:subsec:ctr. The HMAC covers a 20-byte pseudo-header (4 or 6, the
VRRP version, the VRID, 0, the sender's address, zero-padded), the VRRP message with its checksum
zeroed (the checksum differs between the unicast copies of one advert), the trailer's first 12
bytes and 16 zero bytes in place of the HMAC. A receiver finds the trailer by length: the
message plus exactly 28 bytes.

Receiving: with `anti_replay time` a sequence whose second is more than `time_window` away from
the receiver's clock is stale (dropped before the HMAC is computed); a sequence not above the
last one accepted from that sender is a replay (per unicast peer; up to 4 multicast senders).
`mode`: enforce drops adverts without a trailer, permissive and receive-only accept them
(rollout); receive-only sends none.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv6Address

IPAddress = IPv4Address | IPv6Address
EXT_HMAC_SHA256 = 1
HEAD = struct.Struct("!BBHIHH")
MAC_LEN = 16
TRAILER_LEN = HEAD.size + MAC_LEN
PSEUDO_LEN = 20
CHECKSUM_AT = 6  # the VRRP checksum's offset, in v2 and v3
KEY_MIN, KEY_MAX = 32, 64
WINDOW_MIN, WINDOW_MAX, WINDOW_FLOOR = 1, 300, 5
MCAST_SENDERS = 4


class Mode(str, Enum):
    RECEIVE_ONLY = "receive-only"
    PERMISSIVE = "permissive"
    ENFORCE = "enforce"


@dataclass(frozen=True, slots=True)
class AuthHmac:
    """An instance's `auth_hmac` block, checked."""

    keys: tuple[tuple[int, bytes], ...] = field(repr=False)  # never in a log line or a status dump
    active_key: int = 0
    mode: Mode = Mode.ENFORCE
    anti_replay_time: bool = True
    time_window: int = 0  # seconds; 0: not given (the config reader derives it from advert_int)

    def key(self, key_id: int) -> bytes | None:
        return next((k for i, k in self.keys if i == key_id), None)

    @property
    def sends(self) -> bool:
        return self.mode is not Mode.RECEIVE_ONLY


def derived_window(advert_int: float) -> int:
    """keepalived's default time_window: three advert intervals in whole seconds, 5..300."""
    return min(max(3 * int(advert_int), WINDOW_FLOOR), WINDOW_MAX)


def _pseudo(src: IPAddress, version: int, vrid: int) -> bytes:
    return bytes((6 if src.version == 6 else 4, version, vrid, 0)) + src.packed.ljust(PSEUDO_LEN - 4, b"\0")


def _mac(key: bytes, src: IPAddress, vrrp: bytes, head: bytes) -> bytes:
    msg = bytearray(vrrp)
    msg[CHECKSUM_AT:CHECKSUM_AT + 2] = b"\0\0"
    data = _pseudo(src, vrrp[0] >> 4, vrrp[1]) + bytes(msg) + head + bytes(MAC_LEN)
    return hmac.new(key, data, hashlib.sha256).digest()[:MAC_LEN]


def sequence_of(now_ns: int) -> int:
    """The clock as a sequence: UTC seconds (32 bits) and 1/65536 s, the counter at 0."""
    sec, ns = divmod(now_ns, 1_000_000_000)
    return ((sec & 0xFFFFFFFF) << 32) | (((ns << 16) // 1_000_000_000) << 16)


def _after(a: int, b: int) -> bool:
    """a is later than b (64-bit serial arithmetic)."""
    d = (a - b) & 0xFFFFFFFFFFFFFFFF
    return 0 < d < 1 << 63


def _seconds_apart(a: int, b: int) -> int:
    """a - b for two 32-bit second counts, signed."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d >= 1 << 31 else d


def sign(cfg: AuthHmac, src: IPAddress, vrrp: bytes, seq: int) -> bytes:
    """The trailer to send after `vrrp` (any checksum in it: the HMAC does not cover it)."""
    head = HEAD.pack(EXT_HMAC_SHA256, cfg.active_key, 0, seq >> 32, (seq >> 16) & 0xFFFF, seq & 0xFFFF)
    key = cfg.key(cfg.active_key)
    return head + (_mac(key, src, vrrp, head) if key is not None else bytes(MAC_LEN))


def expected_length(vrrp: bytes, ipv6: bool) -> int | None:
    """The VRRP message's length as its header says (None if there is no header)."""
    if len(vrrp) < 8:
        return None
    fixed = 8 + (8 if vrrp[0] >> 4 == 2 else 0)  # v2 carries 8 bytes of authentication data
    return fixed + vrrp[3] * (16 if ipv6 else 4)


def split(payload: bytes, ipv6: bool) -> tuple[bytes, bytes | None]:
    """(VRRP message, trailer or None): a trailer is exactly TRAILER_LEN bytes past the message."""
    length = expected_length(payload, ipv6)
    if length is not None and len(payload) == length + TRAILER_LEN:
        return payload[:length], payload[length:]
    return payload, None


@dataclass
class Verifier:
    """One instance's auth_hmac state: the sequence it sends next, and the last accepted from
    each sender (unicast peers; MCAST_SENDERS multicast senders, least recently used dropped)."""

    cfg: AuthHmac
    unicast: bool = True
    sent: int = 0
    last: dict[IPAddress, int] = field(default_factory=dict)

    def next_sequence(self, now_ns: int) -> int:
        """Above the last one sent, whatever the clock does; in time mode a sequence stranded
        more than the window ahead of a clock stepped back restarts from the clock (receivers
        would drop it as stale), as keepalived does."""
        clock = sequence_of(now_ns)
        if _after(clock, self.sent):
            self.sent = clock
        elif self.cfg.anti_replay_time and _seconds_apart(self.sent >> 32, clock >> 32) > self.cfg.time_window:
            self.sent = clock
        else:
            self.sent = (self.sent + 1) & 0xFFFFFFFFFFFFFFFF
        return self.sent

    def check(self, src: IPAddress, vrrp: bytes, trailer: bytes | None, now_ns: int) -> str | None:
        """None if the advert is to be accepted; otherwise the drop reason (keepalived's counters)."""
        cfg = self.cfg
        if trailer is None:
            return "auth_ext_missing" if cfg.mode is Mode.ENFORCE else None
        ext, key_id, reserved, sec, subsec, ctr = HEAD.unpack(trailer[:HEAD.size])
        if ext != EXT_HMAC_SHA256 or reserved != 0:
            return "auth_ext_malformed"
        now_sec = now_ns // 1_000_000_000
        if cfg.anti_replay_time and abs(_seconds_apart(now_sec, sec)) > cfg.time_window:
            return "auth_ext_stale"
        key = cfg.key(key_id)
        if key is None:
            return "auth_ext_unknown_key"
        if not hmac.compare_digest(_mac(key, src, vrrp, trailer[:HEAD.size]), trailer[HEAD.size:]):
            return "auth_ext_invalid_hmac"
        seq = (sec << 32) | (subsec << 16) | ctr
        last = self.last.get(src)
        if last is not None and cfg.anti_replay_time and abs(_seconds_apart(now_sec, last >> 32)) > cfg.time_window:
            last = None  # a mark outside the window orders nothing the window does not already reject
        if last is not None and not _after(seq, last):
            return "auth_ext_replay"
        if not self.unicast and src not in self.last and len(self.last) >= MCAST_SENDERS:
            del self.last[next(iter(self.last))]  # the least recently used multicast sender
        self.last.pop(src, None)
        self.last[src] = seq
        return None
