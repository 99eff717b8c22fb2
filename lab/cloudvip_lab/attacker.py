"""Run inside a namespace: send crafted VRRP packets (own IP header: any source, any TTL) to a
target, for the hostile-input tests and bench. Prints one JSON line: packets sent, seconds.

    python -m cloudvip_lab.attacker TARGET KIND SECONDS|COUNT [--src ADDR] [--ttl N] [--vrid N] [--pass PW]
                                    [--version 2|3] [--rate PPS] [--priority N]
                                    [--address VIP]
KIND: advert (a valid-looking VRRP advert, priority 254 unless --priority) or garbage (random bytes);
`--count N` sends N packets, else for SECONDS, as fast as possible or at `--rate` packets/s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import time
from ipaddress import IPv4Address

from cloudvip.packet import Advertisement, AuthType, encode


def ip_header(src: IPv4Address, dst: IPv4Address, ttl: int, length: int) -> bytes:
    # the kernel fills in the checksum and total length (raw(7), IP_HDRINCL)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + length, 0, 0, ttl, 112, 0, src.packed, dst.packed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("target", type=IPv4Address)
    ap.add_argument("kind", choices=["advert", "garbage"])
    ap.add_argument("seconds", type=float, nargs="?", default=0.0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--src", type=IPv4Address, required=True)
    ap.add_argument("--ttl", type=int, default=255)
    ap.add_argument("--vrid", type=int, default=51)
    ap.add_argument("--password", default="secretpw")
    ap.add_argument("--version", type=int, choices=(2, 3), default=2)
    ap.add_argument("--rate", type=float, default=0.0, help="packets per second (0: as fast as possible)")
    ap.add_argument("--priority", type=int, default=254)
    ap.add_argument("--address", type=IPv4Address, default=IPv4Address("198.51.100.100"), help="the VIP listed")
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    if args.kind == "advert":
        v2 = args.version == 2  # v2 with the PASS password; v3 has no authentication
        vrrp = encode(Advertisement(version=args.version, vrid=args.vrid, priority=args.priority, interval_cs=100,
                                    addresses=(args.address,),
                                    auth_type=AuthType.PASS if v2 else AuthType.NONE,
                                    auth_data=args.password.encode()[:8].ljust(8, b"\0") if v2 else b""),
                      args.src, args.target)
        packets = [ip_header(args.src, args.target, args.ttl, len(vrrp)) + vrrp]
    else:
        packets = [ip_header(args.src, args.target, args.ttl, 40) + os.urandom(40) for _ in range(256)]
    dst = (str(args.target), 0)
    sent = failed = 0
    start = time.monotonic()
    end = start + args.seconds
    while (sent < args.count) if args.count else (time.monotonic() < end):
        if args.rate:  # paced: never ahead of rate x elapsed (bursts of at most 64)
            ahead = (sent + failed) - args.rate * (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead / args.rate)
        for _ in range(min(64, args.count - sent) if args.count else 64):
            try:
                sock.sendto(packets[sent % len(packets)], dst)
                sent += 1
            except OSError:  # a full send buffer under flood: count it, go on
                failed += 1
    print(json.dumps({"sent": sent, "failed": failed, "seconds": round(time.monotonic() - start, 3)}))


if __name__ == "__main__":
    main()
