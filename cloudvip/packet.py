"""VRRP advertisement codec: RFC 3768 (v2) and RFC 5798/9568 (v3), IPv4 and IPv6.

Pure functions over bytes. Decoding untrusted input raises only `DecodeError`,
whose `reason` is a `DropReason` so the runtime can count every rejection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum, IntEnum
from ipaddress import IPv4Address, IPv6Address, ip_address

IPPROTO_VRRP = 112
VRRP_MCAST_V4 = IPv4Address("224.0.0.18")
VRRP_MCAST_V6 = IPv6Address("ff02::12")
ADVERTISEMENT = 1
AUTH_DATA_LEN = 8
_HEADER = struct.Struct("!BBBBBBH")  # ver/type, vrid, prio, count, (v2 auth, adv) | (v3 rsvd+maxadv), csum

IPAddress = IPv4Address | IPv6Address


class AuthType(IntEnum):
    NONE = 0
    PASS = 1
    AH = 2  # RFC 2338 IP AH; deprecated, not supported


class ChecksumMode(Enum):
    """How the v3 IPv4 checksum covers the pseudo-header (see keepalived-facts)."""

    PSEUDO_HEADER = "pseudo"  # keepalived default: pseudo-header with the real destination
    NO_PSEUDO_HEADER = "v2"  # RFC 9568 / keepalived's v3_checksum_as_v2
    OLD_UNICAST = "old_unicast"  # very old keepalived: pseudo-header with 224.0.0.18 in unicast


class DropReason(str, Enum):
    """Why a received packet was not used; each value is a counter name."""

    TOO_SHORT = "too_short"
    BAD_IP_HEADER = "bad_ip_header"
    BAD_VERSION = "bad_version"
    BAD_TYPE = "bad_type"
    BAD_LENGTH = "bad_length"
    BAD_ADDR_COUNT = "bad_addr_count"
    BAD_CHECKSUM = "bad_checksum"
    BAD_AUTH_TYPE = "bad_auth_type"
    BAD_AUTH = "bad_auth"
    BAD_INTERVAL = "bad_interval"
    BAD_TTL = "bad_ttl"
    # semantic checks done by the instance, not the codec
    WRONG_VRID = "wrong_vrid"
    INTERVAL_MISMATCH = "interval_mismatch"
    ADDRESS_MISMATCH = "address_mismatch"
    NOT_A_PEER = "not_a_peer"
    OWN_PACKET = "own_packet"
    NOT_ACCEPTING = "not_accepting"


class DecodeError(ValueError):
    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRP advertisement. `interval_cs` is in centiseconds for both versions
    (v2 carries whole seconds on the wire: interval_cs must then be a multiple of 100)."""

    version: int
    vrid: int
    priority: int
    addresses: tuple[IPAddress, ...]
    interval_cs: int
    auth_type: AuthType = AuthType.NONE
    auth_data: bytes = b""

    @property
    def interval(self) -> float:
        return self.interval_cs / 100


@dataclass(frozen=True, slots=True)
class IPv4Meta:
    src: IPv4Address
    dst: IPv4Address
    ttl: int
    payload: bytes


def inet_checksum(data: bytes) -> int:
    """RFC 1071 ones-complement sum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    if isinstance(src, IPv4Address):
        return src.packed + dst.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)


def _checksum_prefix(version: int, src: IPAddress, dst: IPAddress, length: int,
                     mode: ChecksumMode) -> bytes:
    if version == 2:
        return b""
    if isinstance(src, IPv6Address):
        return _pseudo_header(src, dst, length)  # IPv6 always has one
    if mode is ChecksumMode.NO_PSEUDO_HEADER:
        return b""
    if mode is ChecksumMode.OLD_UNICAST:
        dst = VRRP_MCAST_V4
    return _pseudo_header(src, dst, length)


def encode(advert: Advertisement, src: IPAddress, dst: IPAddress,
           mode: ChecksumMode = ChecksumMode.PSEUDO_HEADER) -> bytes:
    """Encode the VRRP message (without IP header) sent from src to dst."""
    if advert.version == 2:
        if not isinstance(src, IPv4Address):
            raise ValueError("VRRPv2 is IPv4 only")
        if advert.interval_cs % 100 or not 100 <= advert.interval_cs <= 25500:
            raise ValueError("VRRPv2 advert interval must be 1..255 whole seconds")
        byte5, byte6 = int(advert.auth_type), advert.interval_cs // 100
    elif advert.version == 3:
        if not 1 <= advert.interval_cs <= 0xFFF:
            raise ValueError("VRRPv3 max advert interval must be 1..4095 centiseconds")
        byte5, byte6 = advert.interval_cs >> 8, advert.interval_cs & 0xFF
    else:
        raise ValueError(f"unknown VRRP version {advert.version}")
    addrs = b"".join(a.packed for a in advert.addresses)
    body = addrs
    if advert.version == 2:
        body += advert.auth_data[:AUTH_DATA_LEN].ljust(AUTH_DATA_LEN, b"\0")
    header = _HEADER.pack((advert.version << 4) | ADVERTISEMENT, advert.vrid, advert.priority,
                          len(advert.addresses), byte5, byte6, 0)
    msg = header + body
    csum = inet_checksum(_checksum_prefix(advert.version, src, dst, len(msg), mode) + msg)
    return msg[:6] + struct.pack("!H", csum) + msg[8:]


def with_ipv6_checksum(payload: bytes, src: IPv6Address, dst: IPAddress) -> bytes:
    """The payload with the checksum the kernel computes for a socket with IPV6_CHECKSUM (as
    keepalived's): over all of it, an auth_hmac trailer included."""
    blank = payload[:6] + b"\0\0" + payload[8:]
    csum = inet_checksum(_pseudo_header(src, dst, len(blank)) + blank)
    return payload[:6] + struct.pack("!H", csum) + payload[8:]


def decode(data: bytes, src: IPAddress, dst: IPAddress, covered: bytes | None = None) -> Advertisement:
    """Decode and verify a VRRP message received from src, sent to dst.

    Checks structure and checksum only; whether the advert is meant for an
    instance (VRID, auth, addresses) is the instance's decision. `covered`: what the checksum
    covers when it is more than the message (IPv6 with an auth_hmac trailer).
    """
    if len(data) < _HEADER.size:
        raise DecodeError(DropReason.TOO_SHORT, f"{len(data)} bytes, need at least {_HEADER.size}")
    vt, vrid, prio, count, byte5, byte6, _ = _HEADER.unpack_from(data)
    version, ptype = vt >> 4, vt & 0x0F
    ipv6 = isinstance(src, IPv6Address)
    if version not in (2, 3) or (version == 2 and ipv6):
        raise DecodeError(DropReason.BAD_VERSION, f"version {version}" + (" over IPv6" if ipv6 else ""))
    if ptype != ADVERTISEMENT:
        raise DecodeError(DropReason.BAD_TYPE, f"type {ptype}")
    addr_len = 16 if ipv6 else 4
    fixed = _HEADER.size + (AUTH_DATA_LEN if version == 2 else 0)
    expected = fixed + count * addr_len
    if len(data) < fixed or (len(data) - fixed) % addr_len:
        raise DecodeError(DropReason.BAD_LENGTH, f"{len(data)} bytes is no whole VRRPv{version} message")
    if len(data) != expected:
        raise DecodeError(DropReason.BAD_ADDR_COUNT,
                          f"count says {count} addresses, message holds {(len(data) - fixed) // addr_len}")
    if version == 2:
        interval_cs = byte6 * 100
        try:
            auth_type = AuthType(byte5)
        except ValueError:
            raise DecodeError(DropReason.BAD_AUTH_TYPE, f"auth type {byte5}") from None
        if auth_type is AuthType.AH:
            raise DecodeError(DropReason.BAD_AUTH_TYPE, "IP AH authentication is not supported")
        auth_data = bytes(data[expected - AUTH_DATA_LEN:expected])
    else:
        interval_cs = ((byte5 & 0x0F) << 8) | byte6
        auth_type, auth_data = AuthType.NONE, b""
    if interval_cs == 0:
        raise DecodeError(DropReason.BAD_INTERVAL, "advertisement interval 0")
    if not _checksum_ok(bytes(data if covered is None else covered), version, src, dst):
        raise DecodeError(DropReason.BAD_CHECKSUM, "checksum mismatch")
    start = _HEADER.size
    addresses = tuple(ip_address(bytes(data[start + i * addr_len:start + (i + 1) * addr_len]))
                      for i in range(count))
    return Advertisement(version, vrid, prio, addresses, interval_cs, auth_type, auth_data)


def _checksum_ok(msg: bytes, version: int, src: IPAddress, dst: IPAddress) -> bool:
    modes = (ChecksumMode.PSEUDO_HEADER,) if version == 2 or isinstance(src, IPv6Address) \
        else tuple(ChecksumMode)
    return any(inet_checksum(_checksum_prefix(version, src, dst, len(msg), m) + msg) == 0
               for m in modes)


def parse_ipv4(packet: bytes) -> IPv4Meta:
    """Split a raw IPv4 packet (as a raw socket returns it) into header facts and payload."""
    if len(packet) < 20:
        raise DecodeError(DropReason.TOO_SHORT, f"{len(packet)} bytes, no IPv4 header")
    vihl, _tos, total_len = struct.unpack_from("!BBH", packet)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or len(packet) < ihl:
        raise DecodeError(DropReason.BAD_IP_HEADER, f"version/IHL byte 0x{vihl:02x}")
    ttl, proto = packet[8], packet[9]
    if proto != IPPROTO_VRRP:
        raise DecodeError(DropReason.BAD_IP_HEADER, f"protocol {proto}")
    # the kernel hands us total_len as sent; ethernet padding may trail it
    end = total_len if ihl <= total_len <= len(packet) else len(packet)
    return IPv4Meta(IPv4Address(packet[12:16]), IPv4Address(packet[16:20]), ttl, bytes(packet[ihl:end]))
