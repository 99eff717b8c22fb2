"""cloudvip-to-cloudvip advert authentication (beyond keepalived, NOT keepalived-compatible):
an HMAC-SHA256 trailer after the VRRP packet, with replay protection. Pure: bytes in, bytes or a
drop reason out; the caller passes the clock.

Trailer (28 bytes): b"CV" | version 1 | key id | counter (u64, microseconds of wall-clock time
at sending) | the first 16 bytes of HMAC-SHA256(key, domain | source address | VRRP packet |
the trailer's first 12 bytes). A receiver accepts a counter only if it is newer than the last
one it took from that source and within WINDOW of its own clock (NTP-synced cloud VMs), so a
captured advert replayed later, or reordered, is dropped.

Key file (root-only): one `ID HEX` per line (id 1..255, at least 16 bytes of key); the first
line signs, every line is accepted. Rotation without a failover: add the new key as a second
line everywhere (reload), move it first everywhere (reload), remove the old one (reload).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from .private_files import PrivateFileError, read_private

IPAddress = IPv4Address | IPv6Address
MAGIC, VERSION = b"CV", 1
HEADER = struct.Struct("!2sBBQ")
MAC_LEN = 16
TRAILER_LEN = HEADER.size + MAC_LEN
DOMAIN = b"cloudvip-vrrp-auth-v1"
WINDOW_US = 60_000_000  # clocks may differ this much


class KeyFileError(ValueError):
    pass


@dataclass(frozen=True)
class Keys:
    signing_id: int
    accepted: dict[int, bytes]


def parse_keys(text: str, name: str) -> Keys:
    accepted: dict[int, bytes] = {}
    first: int | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            key_id, key = int(parts[0]), bytes.fromhex(parts[1]) if len(parts) == 2 else b""
        except ValueError:
            key_id, key = 0, b""
        if not 1 <= key_id <= 255 or len(key) < 16 or key_id in accepted:
            raise KeyFileError(f"{name}:{n}: expected `ID HEX` (a new id 1..255, at least 16 bytes of key in hex)")
        accepted[key_id] = key
        first = key_id if first is None else first
    if first is None:
        raise KeyFileError(f"{name}: no key (expected `ID HEX` lines)")
    return Keys(first, accepted)


def load_keys(path: str) -> Keys:
    """The keys of a private file (see private_files: owner root or ours, no access for others)."""
    try:
        return parse_keys(read_private(path, encoding="ascii"), path)
    except PrivateFileError as exc:
        raise KeyFileError(f"{exc} (expected `ID HEX` lines)" if str(exc).endswith("not text") else str(exc)) from None


def _mac(key: bytes, src: IPAddress, vrrp: bytes, header: bytes) -> bytes:
    return hmac.new(key, DOMAIN + src.packed + vrrp + header, hashlib.sha256).digest()[:MAC_LEN]


def sign(keys: Keys, src: IPAddress, vrrp: bytes, now_us: int) -> bytes:
    """The trailer to send after `vrrp`."""
    header = HEADER.pack(MAGIC, VERSION, keys.signing_id, now_us)
    return header + _mac(keys.accepted[keys.signing_id], src, vrrp, header)


def split(payload: bytes) -> tuple[bytes, bytes | None]:
    """(VRRP packet, trailer or None) when the payload ends like a trailer; the caller falls back
    to the whole payload if the VRRP part does not decode (a keepalived packet)."""
    if len(payload) > TRAILER_LEN and payload[-TRAILER_LEN:-TRAILER_LEN + 2] == MAGIC:
        return payload[:-TRAILER_LEN], payload[-TRAILER_LEN:]
    return payload, None


@dataclass
class Verifier:
    """Checks a peer's adverts, and numbers ours: `sent` never goes backwards, whatever the wall
    clock does (a clock stepped back would make every peer drop our adverts as replays)."""

    keys: Keys
    last: dict[IPAddress, int] = field(default_factory=dict)
    sent: int = 0

    def next_counter(self, now_us: int) -> int:
        self.sent = max(self.sent + 1, now_us)
        return self.sent

    def check(self, src: IPAddress, vrrp: bytes, trailer: bytes | None, now_us: int) -> str | None:
        """None if authentic and fresh; otherwise the drop reason."""
        if trailer is None or len(trailer) != TRAILER_LEN:
            return "auth_missing"
        magic, version, key_id, counter = HEADER.unpack(trailer[:HEADER.size])
        if magic != MAGIC or version != VERSION:
            return "auth_missing"
        key = self.keys.accepted.get(key_id)
        if key is None:
            return "auth_unknown_key"
        if not hmac.compare_digest(_mac(key, src, vrrp, trailer[:HEADER.size]), trailer[HEADER.size:]):
            return "auth_bad_mac"
        if counter <= self.last.get(src, 0) or abs(counter - now_us) > WINDOW_US:
            return "auth_replay"
        self.last[src] = counter
        return None
