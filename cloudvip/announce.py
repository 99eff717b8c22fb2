"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6).

The frame builders are pure; `Announcer` sends them on one interface. No
library does these two frames well without pulling in a packet toolkit, so
they are written here (RFC 5227 ARP announcement, RFC 4861 section 7.2.6).
"""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
ALL_NODES = IPv6Address("ff02::1")
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000


def mac_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def gratuitous_arp(mac: bytes, address: IPv4Address) -> bytes:
    """Ethernet frame: broadcast ARP request announcing address at mac (as keepalived sends it)."""
    eth = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, address.packed, BROADCAST, address.packed)
    return eth + arp


def unsolicited_na(mac: bytes, address: IPv6Address) -> bytes:
    """ICMPv6 neighbour advertisement (override flag, target link-layer option); the
    kernel fills in the checksum on a raw ICMPv6 socket."""
    return struct.pack("!BBHI16sBB6s", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE, address.packed, 2, 1, mac)


class Announcer:
    """Sends announcements for addresses on one interface."""

    def __init__(self, ifname: str, ifindex: int, mac: str) -> None:
        self.ifname, self.ifindex, self.mac = ifname, ifindex, mac_bytes(mac)

    def announce(self, addresses: list[IPv4Address | IPv6Address], repeat: int = 1) -> int:
        """Send `repeat` announcements per address; returns how many were sent."""
        sent = 0
        v4 = [a for a in addresses if isinstance(a, IPv4Address)]
        v6 = [a for a in addresses if isinstance(a, IPv6Address)]
        if v4:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
                s.bind((self.ifname, ETH_P_ARP))
                for _ in range(repeat):
                    for a4 in v4:
                        s.send(gratuitous_arp(self.mac, a4))
                        sent += 1
        if v6:
            with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
                for _ in range(repeat):
                    for a6 in v6:
                        s.sendto(unsolicited_na(self.mac, a6), (str(ALL_NODES), 0, 0, self.ifindex))
                        sent += 1
        return sent
