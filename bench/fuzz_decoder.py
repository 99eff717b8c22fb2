#!/usr/bin/env python3
"""Fuzz the VRRP decoder with N random and mutated inputs (default 1,000,000).

Mutations start from the keepalived 2.2.7 captures: byte flips, truncation, insertion,
splicing of two captures, count/length field rewrites. Any exception other than
DecodeError is a bug: the input is printed and the script exits 1.

    python bench/fuzz_decoder.py [-n 1000000] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from ipaddress import IPv6Address
from pathlib import Path

from cloudvip.packet import DecodeError, decode, parse_ipv4

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [bytes.fromhex(v["ip_hex"]) for v in json.loads((ROOT / "tests/data/vrrp_vectors.json").read_text())]
SRC6, DST6 = IPv6Address("fe80::1"), IPv6Address("ff02::12")


def mutate(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.2:
        return rng.randbytes(rng.randrange(0, 120))
    data = bytearray(rng.choice(SEEDS))
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(6)
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1 and data:
            del data[rng.randrange(len(data)):]
        elif op == 2:
            pos = rng.randrange(len(data) + 1)
            data[pos:pos] = rng.randbytes(rng.randrange(1, 17))
        elif op == 3:
            other = rng.choice(SEEDS)
            cut = rng.randrange(len(other))
            data = data[:cut] + bytearray(other[cut:])
        elif op == 4 and len(data) > 23:
            data[23] = rng.choice([0, 1, 2, 3, 20, 255])  # VRRP address count
        elif op == 5 and len(data) > 3:
            data[2:4] = rng.randrange(65536).to_bytes(2, "big")  # IP total length
    return bytes(data)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    reasons: Counter[str] = Counter()
    accepted = 0
    start = time.perf_counter()
    for i in range(args.n):
        data = mutate(rng)
        try:
            try:
                meta = parse_ipv4(data)
                decode(meta.payload, meta.src, meta.dst)
                accepted += 1
            except DecodeError as exc:
                reasons[exc.reason.value] += 1
            try:  # the same bytes as a bare IPv6 VRRP payload
                decode(data[20:], SRC6, DST6)
                accepted += 1
            except DecodeError as exc:
                reasons[exc.reason.value] += 1
        except Exception as exc:  # noqa: BLE001 - that is what we hunt
            print(f"BUG after {i} inputs (seed {seed}): {type(exc).__name__}: {exc}\ninput: {data.hex()}")
            return 1
    elapsed = time.perf_counter() - start
    print(f"fuzz_decoder: {args.n:,} inputs ({2 * args.n:,} decode calls), seed {seed}, "
          f"{elapsed:.1f} s, {2 * args.n / elapsed:,.0f} calls/s")
    print(f"  accepted: {accepted:,}; rejected by reason: " +
          ", ".join(f"{k} {v:,}" for k, v in reasons.most_common()))
    print("  no exception other than DecodeError")
    return 0


if __name__ == "__main__":
    sys.exit(main())
