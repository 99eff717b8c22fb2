"""The decoder on hostile bytes: nothing but DecodeError, ever.
(bench/fuzz_decoder.py runs the long campaign; this is the CI-sized one.)"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cloudvip.packet import DecodeError, decode, parse_ipv4

SEEDS = [bytes.fromhex(v["ip_hex"]) for v in
         json.loads((Path(__file__).parent.parent / "data" / "vrrp_vectors.json").read_text())]
SRC4, DST4 = IPv4Address("198.51.100.11"), IPv4Address("198.51.100.12")
SRC6, DST6 = IPv6Address("fe80::1"), IPv6Address("ff02::12")


def _decode_all(data: bytes) -> None:
    for src, dst in ((SRC4, DST4), (SRC6, DST6)):
        try:
            decode(data, src, dst)
        except DecodeError:
            pass
    try:
        meta = parse_ipv4(data)
        decode(meta.payload, meta.src, meta.dst)
    except DecodeError:
        pass


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _decode_all(data)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=6),
       st.integers(0, 90))
def test_mutated_captures(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    _decode_all(bytes(data[:cut] if cut < len(data) else data))
