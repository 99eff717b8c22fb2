"""Can we hear the peers? Listen (never send) on each instance's VRRP socket for three advert
intervals and say who was heard, with TTL and priority.

Only a master sends adverts: silence from every peer means no master elsewhere, which is
normal when this node is the master, and a broken path (or no peer running) otherwise.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..config import VrrpInstance
from ..config.model import IPAddress
from ..transport import Channel, Received
from .findings import Finding, fail, ok, warn
from .host import Endpoint


@dataclass
class Heard:
    """The adverts one instance heard, by source."""

    inst: VrrpInstance
    by_source: dict[IPAddress, Received] = field(default_factory=dict)
    error: str = ""

    def record(self, rx: Received) -> None:
        self.by_source[rx.src] = rx


def listen_seconds(inst: VrrpInstance) -> float:
    return 3 * inst.advert_int


async def listen(instances: list[tuple[VrrpInstance, Endpoint]], seconds: float) -> list[Heard]:
    """All instances at once, for `seconds` (the longest instance's three intervals)."""
    loop = asyncio.get_running_loop()
    heard = [Heard(inst) for inst, _ in instances]
    channels: dict[tuple[str, str, bool], Channel] = {}
    try:
        for h, (inst, ep) in zip(heard, instances, strict=True):
            if ep.local is None:
                h.error = "no source address"
                continue
            multicast = not inst.unicast_peers
            key = (ep.ifname, str(ep.local), multicast)
            try:
                if key not in channels:
                    channels[key] = Channel(ep.ifname, ep.ifindex, ep.local,
                                            bind=inst.unicast_src_ip is not None and not multicast, multicast=multicast)
                    channels[key].start(loop)
            except OSError as exc:
                h.error = f"cannot open a VRRP socket on {ep.ifname}: {exc}"
                continue
            channels[key].handlers[inst.vrid] = h.record
        await asyncio.sleep(seconds)
    finally:
        for ch in channels.values():
            ch.close()
    return heard


def peer_findings(h: Heard, peers: list[IPAddress], local_state: str | None, carries_vip: bool) -> list[Finding]:
    """What the listening says, per peer; `local_state`: this node's state from a running agent
    here (None: no agent); `carries_vip`: the host has the instance's addresses."""
    name, inst = h.inst.name, h.inst
    if h.error:
        return [fail(name, "peers", h.error, "see the interface and source address checks above")]
    secs = f"{listen_seconds(inst):g} s"
    out: list[Finding] = []
    masters = {src: rx for src, rx in h.by_source.items() if rx.advert.priority > 0}
    for src, rx in sorted(h.by_source.items(), key=lambda kv: str(kv[0])):
        a = rx.advert
        where = "a configured peer" if src in peers or not peers else "NOT a configured peer"
        detail = f"heard {src} ({where}): v{a.version} priority {a.priority}, TTL {rx.ttl}, " \
                 f"advert every {a.interval_cs / 100:g} s"
        if peers and src not in peers:
            out.append(warn(name, "peer", detail,
                            f"add unicast_peer {src}, or find out who sends VRID {inst.vrid} here"))
        elif a.interval_cs / 100 != inst.advert_int:
            out.append(warn(name, "peer", detail + f"; ours is {inst.advert_int:g} s",
                            "set the same advert_int on every node"))
        else:
            out.append(ok(name, "peer", detail))
    silent = [p for p in peers if p not in h.by_source]
    if silent and h.by_source:
        out.append(ok(name, "peer", f"{', '.join(map(str, silent))} silent for {secs}: a backup sends nothing "
                                    "while another node is master"))
    elif silent:
        if local_state == "MASTER":
            out.append(ok(name, "peer", f"this node is master (the agent says): backups "
                                        f"{', '.join(map(str, silent))} send nothing"))
        else:
            out.append(fail(name, "peer", f"no advert from {', '.join(map(str, silent))} in {secs}: no node is master, "
                            "or its adverts do not reach this node",
                            "check: the peer's agent runs (systemctl status cloudvip / keepalived); the cloud's "
                            "security group or firewall allows IP protocol 112 between the nodes; each node's "
                            "unicast_peer lists the other's address and unicast_src_ip is its own"))
    elif not peers and not h.by_source:
        out.append(warn(name, "peer", f"no advert on the multicast group in {secs}",
                        "a cloud network carries no multicast: list the other nodes as unicast_peer"))
    if masters and local_state == "MASTER":
        out.append(fail(name, "split brain", f"this node is master and so is {', '.join(map(str, masters))}: "
                        "they do not hear each other (or one ignores the other's adverts)",
                        "see the firewall and peer checks on both nodes; the same virtual_router_id, "
                        "version and authentication on both"))
    elif masters and carries_vip and local_state != "MASTER":
        who = ", ".join(map(str, masters))
        out.append(fail(name, "vip", f"this host carries the VIP while {who} is master: two nodes answer for it",
                        "stop whatever added it here (another keepalived?) and remove it: "
                        + "; ".join(f"ip addr del {v.interface} dev {v.dev or inst.interface}"
                                    for v in inst.vips)))
    return out
