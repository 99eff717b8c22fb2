"""Packet codec: keepalived 2.2.7 captures, checksum variants, and every rejection reason."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from cloudvip.packet import (Advertisement, AuthType, ChecksumMode, DecodeError, DropReason,
                             VRRP_MCAST_V4, decode, encode, inet_checksum, parse_ipv4)

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "vrrp_vectors.json").read_text())
SRC4, DST4 = IPv4Address("198.51.100.11"), IPv4Address("198.51.100.12")
SRC6, DST6 = IPv6Address("fe80::1"), IPv6Address("fe80::2")


def _id(v: dict) -> str:
    return f"{v['scenario']}-{v['src']}-{v['priority']}"


@pytest.mark.parametrize("vec", VECTORS, ids=_id)
def test_keepalived_vector_decodes_and_reencodes(vec: dict) -> None:
    meta = parse_ipv4(bytes.fromhex(vec["ip_hex"]))
    assert (str(meta.src), str(meta.dst), meta.ttl) == (vec["src"], vec["dst"], 255)
    assert meta.payload.hex() == vec["vrrp_hex"]
    adv = decode(meta.payload, meta.src, meta.dst)
    assert adv.version == vec["vrrp_version"]
    assert adv.vrid == vec["vrid"]
    assert adv.priority == vec["priority"]
    assert [str(a) for a in adv.addresses] == vec["vips"]
    if adv.version == 2:
        assert adv.interval_cs == vec["advert_int_s"] * 100
        assert adv.auth_type is AuthType(vec["auth_type"])
        assert adv.auth_data == vec["auth_data"].encode().ljust(8, b"\0")
    else:
        assert adv.interval_cs == vec["max_advert_int_cs"]
    # keepalived's default (pseudo-header with the real destination) reproduces the bytes exactly
    assert encode(adv, meta.src, meta.dst).hex() == vec["vrrp_hex"]


def test_v3_checksum_differs_per_unicast_peer_as_keepalived_sends_it() -> None:
    adv = Advertisement(3, 51, 100, (IPv4Address("198.51.100.100"),), 100)
    a = encode(adv, SRC4, DST4)
    b = encode(adv, SRC4, IPv4Address("198.51.100.13"))
    assert a[6:8] != b[6:8]
    assert decode(a, SRC4, DST4) == adv
    with pytest.raises(DecodeError) as exc:
        decode(a, SRC4, IPv4Address("198.51.100.13"))
    assert exc.value.reason is DropReason.BAD_CHECKSUM


@pytest.mark.parametrize("mode", list(ChecksumMode))
def test_v3_ipv4_accepts_all_three_checksum_conventions(mode: ChecksumMode) -> None:
    adv = Advertisement(3, 7, 200, (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")), 10)
    assert decode(encode(adv, SRC4, DST4, mode), SRC4, DST4) == adv


def test_old_unicast_checksum_uses_the_multicast_group() -> None:
    adv = Advertisement(3, 7, 200, (IPv4Address("10.0.0.1"),), 100)
    assert encode(adv, SRC4, DST4, ChecksumMode.OLD_UNICAST) == encode(adv, SRC4, VRRP_MCAST_V4)


def test_v3_ipv6_roundtrip_uses_pseudo_header() -> None:
    adv = Advertisement(3, 9, 120, (IPv6Address("2001:db8::100"), IPv6Address("fe80::100")), 100)
    data = encode(adv, SRC6, DST6)
    assert len(data) == 8 + 32
    assert decode(data, SRC6, DST6) == adv
    # the same bytes from another source fail: the source is in the pseudo-header
    with pytest.raises(DecodeError) as exc:
        decode(data, IPv6Address("fe80::3"), DST6)
    assert exc.value.reason is DropReason.BAD_CHECKSUM


def test_v2_checksum_is_over_the_message_only() -> None:
    adv = Advertisement(2, 51, 90, (IPv4Address("198.51.100.100"),), 100, AuthType.PASS, b"secretpw")
    data = encode(adv, SRC4, DST4)
    assert inet_checksum(data) == 0
    assert encode(adv, SRC4, VRRP_MCAST_V4) == data


def test_v2_short_password_is_nul_padded() -> None:
    adv = Advertisement(2, 1, 100, (IPv4Address("10.1.1.1"),), 300, AuthType.PASS, b"abc")
    data = encode(adv, SRC4, DST4)
    assert data[-8:] == b"abc\0\0\0\0\0"
    assert data[5] == 3  # whole seconds on the wire
    assert decode(data, SRC4, DST4).auth_data == b"abc\0\0\0\0\0"


def test_v3_interval_is_twelve_bit_centiseconds() -> None:
    adv = Advertisement(3, 1, 100, (IPv4Address("10.1.1.1"),), 4095)
    data = encode(adv, SRC4, DST4)
    assert data[4] == 0x0F and data[5] == 0xFF
    assert decode(data, SRC4, DST4).interval == 40.95


def test_zero_addresses_allowed() -> None:
    adv = Advertisement(2, 1, 100, (), 100, AuthType.NONE, b"\0" * 8)
    assert decode(encode(adv, SRC4, DST4), SRC4, DST4) == adv


@pytest.mark.parametrize("adv,src", [
    (Advertisement(2, 1, 100, (), 50), SRC4),            # sub-second v2
    (Advertisement(3, 1, 100, (), 4096), SRC4),          # over 12 bits
    (Advertisement(2, 1, 100, (), 100), SRC6),           # v2 over IPv6
    (Advertisement(4, 1, 100, (), 100), SRC4),
])
def test_encode_refuses_what_the_wire_cannot_carry(adv: Advertisement, src) -> None:
    with pytest.raises(ValueError):
        encode(adv, src, DST6 if src.version == 6 else DST4)


def _v2() -> bytearray:
    adv = Advertisement(2, 51, 100, (IPv4Address("198.51.100.100"),), 100, AuthType.PASS, b"secretpw")
    return bytearray(encode(adv, SRC4, DST4))


def _fix_checksum(data: bytearray) -> bytes:
    data[6:8] = b"\0\0"
    data[6:8] = inet_checksum(bytes(data)).to_bytes(2, "big")
    return bytes(data)


def _mutate(change) -> bytes:
    data = _v2()
    change(data)
    return _fix_checksum(data)


@pytest.mark.parametrize("data,reason", [
    (b"", DropReason.TOO_SHORT),
    (b"\x21\x33\x64", DropReason.TOO_SHORT),
    (_mutate(lambda d: d.__setitem__(0, 0x11)), DropReason.BAD_VERSION),
    (_mutate(lambda d: d.__setitem__(0, 0x22)), DropReason.BAD_TYPE),
    (_mutate(lambda d: d.__setitem__(3, 2)), DropReason.BAD_ADDR_COUNT),
    (_fix_checksum(_v2()[:-1]), DropReason.BAD_LENGTH),
    (_mutate(lambda d: d.__setitem__(4, 2)), DropReason.BAD_AUTH_TYPE),
    (_mutate(lambda d: d.__setitem__(4, 9)), DropReason.BAD_AUTH_TYPE),
    (_mutate(lambda d: d.__setitem__(5, 0)), DropReason.BAD_INTERVAL),
    (bytes(_v2()[:7]) + b"\x00" + bytes(_v2()[8:]), DropReason.BAD_CHECKSUM),
])
def test_every_rejection_has_its_reason(data: bytes, reason: DropReason) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(data, SRC4, DST4)
    assert exc.value.reason is reason
    assert exc.value.detail


def test_v2_over_ipv6_is_a_version_error() -> None:
    data = bytes(_v2())
    with pytest.raises(DecodeError) as exc:
        decode(data, SRC6, DST6)
    assert exc.value.reason is DropReason.BAD_VERSION


@pytest.mark.parametrize("packet,reason", [
    (b"\x45" + b"\0" * 10, DropReason.TOO_SHORT),
    (b"\x65" + b"\0" * 30, DropReason.BAD_IP_HEADER),
    (b"\x4f" + b"\0" * 30, DropReason.BAD_IP_HEADER),
    (bytes.fromhex("45c0002800010000ff066626c633640cc633640b") + b"\0" * 20, DropReason.BAD_IP_HEADER),
])
def test_ipv4_header_errors(packet: bytes, reason: DropReason) -> None:
    with pytest.raises(DecodeError) as exc:
        parse_ipv4(packet)
    assert exc.value.reason is reason


def test_ipv4_trailing_padding_is_trimmed_by_total_length() -> None:
    ip = bytes.fromhex(VECTORS[0]["ip_hex"])
    meta = parse_ipv4(ip + b"\0" * 6)
    assert meta.payload.hex() == VECTORS[0]["vrrp_hex"]


def test_addresses_decode_as_ip_objects() -> None:
    meta = parse_ipv4(bytes.fromhex(VECTORS[0]["ip_hex"]))
    assert decode(meta.payload, meta.src, meta.dst).addresses == (ip_address("198.51.100.100"),)
