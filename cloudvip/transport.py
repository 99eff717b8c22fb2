"""Raw VRRP sockets (IP protocol 112) on the asyncio loop.

One `Channel` per (interface, family, source address): instances that share it
are told apart by VRID. Unicast channels are bound to `unicast_src_ip`, which
sets the source and means the kernel only hands us packets addressed to it;
multicast channels join 224.0.0.18 / ff02::12 on the interface.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Callable

from .auth_hmac import split as split_trailer
from .logs import worth_logging
from .packet import (IPPROTO_VRRP, VRRP_MCAST_V4, VRRP_MCAST_V6, Advertisement, ChecksumMode, DecodeError,
                     IPAddress, decode, encode, parse_ipv4, with_ipv6_checksum)

log = logging.getLogger("cloudvip.transport")
TOS_CS6 = 0xC0
RECV_BATCH = 64  # packets read per wake-up, so a flood cannot starve the timers


@dataclass(frozen=True, slots=True)
class Received:
    advert: Advertisement
    src: IPAddress
    dst: IPAddress
    ttl: int
    vrrp: bytes = b""  # the VRRP packet as received (what an authentication trailer covers)
    trailer: bytes | None = None  # the auth_hmac trailer, if the packet had one


Handler = Callable[[Received], None]


class Channel:
    def __init__(self, ifname: str, ifindex: int, local: IPAddress, *, bind: bool,
                 multicast: bool, ttl: int = 255) -> None:
        """local: our source address (unicast_src_ip, else the interface's primary address,
        which the kernel picks as source); bind: bind to it (unicast_src_ip given)."""
        self.ifname, self.ifindex, self.family = ifname, ifindex, local.version
        self.local, self.bind, self.multicast = local, bind, multicast
        self.handlers: dict[int, Handler] = {}  # by VRID
        self.drops: Counter[str] = Counter()
        self.sent = 0
        self.send_errors = 0
        self.sock = self._open(ttl)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self, ttl: int) -> socket.socket:
        af = socket.AF_INET if self.family == 4 else socket.AF_INET6
        s = socket.socket(af, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
            if self.family == 4:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_CS6)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                if self.multicast:
                    mreqn = struct.pack("4s4si", VRRP_MCAST_V4.packed, self.local.packed, self.ifindex)
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)  # source: local
                if self.bind:
                    s.bind((str(self.local), 0))
            else:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, TOS_CS6)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                if self.multicast:
                    mreq = VRRP_MCAST_V6.packed + struct.pack("@I", self.ifindex)
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
                if self.bind:
                    s.bind((str(self.local), 0, 0, self.ifindex if self.local.is_link_local else 0))
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        return s

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()

    def send(self, advert: Advertisement, dst: IPAddress, mode: ChecksumMode = ChecksumMode.PSEUDO_HEADER,
             sign: Callable[[bytes], bytes] | None = None) -> bool:
        """Send one advert (with `sign`'s trailer appended, if given); a failed send is counted
        and logged, never raised."""
        try:
            data = encode(advert, self.local, dst, mode)
            if sign is not None:
                data += sign(data)
                if isinstance(self.local, IPv6Address):  # keepalived's kernel checks the trailer's bytes too
                    data = with_ipv6_checksum(data, self.local, dst)
            if self.family == 4:
                self.sock.sendto(data, (str(dst), 0))
            else:
                self.sock.sendto(data, (str(dst), 0, 0, self.ifindex if dst.is_link_local or dst.is_multicast else 0))
        except (OSError, ValueError) as exc:
            self.send_errors += 1
            if worth_logging(self.send_errors):
                log.warning("%s: sending advert to %s failed: %s (%d so far)", self.ifname, dst, exc,
                            self.send_errors)
            return False
        self.sent += 1
        return True

    @property
    def group(self) -> IPAddress:
        return VRRP_MCAST_V4 if self.family == 4 else VRRP_MCAST_V6

    def _on_readable(self) -> None:
        for _ in range(RECV_BATCH):
            try:
                if self.family == 4:
                    packet = self.sock.recv(4096)
                    received = self._ipv4(packet)
                else:
                    data, anc, _flags, addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(20) * 2)
                    received = self._ipv6(data, anc, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("%s: receive failed: %s", self.ifname, exc)
                return
            if received is None:
                continue
            handler = self.handlers.get(received.advert.vrid)
            if handler is None:
                self.drops["wrong_vrid"] += 1
                continue
            try:
                handler(received)
            except Exception:  # a bug in one instance must not stop the socket
                log.exception("%s: handling an advert from %s failed", self.ifname, received.src)

    def _ipv4(self, packet: bytes) -> Received | None:
        try:
            meta = parse_ipv4(packet)
            return _received(meta.payload, meta.src, meta.dst, meta.ttl)
        except DecodeError as exc:
            self._count(exc, packet[12:16] if len(packet) >= 16 else b"")
            return None

    def _ipv6(self, data: bytes, anc: list[tuple[int, int, bytes]], addr: tuple[str, ...]) -> Received | None:
        ttl, dst = -1, None
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                ttl = struct.unpack("@i", value[:4])[0]
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 16:
                dst = IPv6Address(value[:16])
        src = IPv6Address(addr[0].split("%")[0])
        if dst is None:
            self.drops["bad_ip_header"] += 1
            return None
        try:
            return _received(data, src, dst, ttl)
        except DecodeError as exc:
            self._count(exc, src.packed)
            return None

    def _count(self, exc: DecodeError, src: bytes) -> None:
        count = self.drops[exc.reason.value] = self.drops[exc.reason.value] + 1
        if worth_logging(count):
            log.info("%s: dropped packet from %s: %s (%d so far)", self.ifname,
                     ".".join(map(str, src)) if len(src) == 4 else src.hex(), exc, count)


def _received(payload: bytes, src: IPAddress, dst: IPAddress, ttl: int) -> Received:
    """Decode, recognising an auth_hmac trailer by length (the message plus exactly 28 bytes)."""
    ipv6 = isinstance(src, IPv6Address)
    vrrp, trailer = split_trailer(payload, ipv6)
    covered = payload if ipv6 and trailer is not None else None  # IPv6: the checksum covers the trailer
    return Received(decode(vrrp, src, dst, covered), src, dst, ttl, vrrp, trailer)
