"""Cross-checks over the whole configuration, the ones an operator would want."""

from __future__ import annotations

from collections import defaultdict

from .diagnostics import Diagnostics, Location
from .model import Config, TrackRef


def check(cfg: Config, diags: Diagnostics) -> None:
    _names(cfg, diags)
    _vrids(cfg, diags)
    _unicast(cfg, diags)
    _references(cfg, diags)
    _groups(cfg, diags)
    _vips(cfg, diags)


def _names(cfg: Config, diags: Diagnostics) -> None:
    first: dict[str, Location] = {}
    for inst in cfg.instances:
        if inst.name in first:
            diags.error(inst.loc, f"vrrp_instance {inst.name} is defined twice (first at {first[inst.name]})",
                        "unique instance names")
        first.setdefault(inst.name, inst.loc)


def _vrids(cfg: Config, diags: Diagnostics) -> None:
    seen: dict[tuple[str, int, int], str] = {}
    for inst in cfg.instances:
        key = (inst.interface, inst.family, inst.vrid)
        if key in seen:
            diags.error(inst.loc, f"virtual_router_id {inst.vrid} is already used by {seen[key]} on "
                                  f"{inst.interface}", "a VRID unique per interface and address family")
        seen.setdefault(key, inst.name)


def _unicast(cfg: Config, diags: Diagnostics) -> None:
    for inst in cfg.instances:
        src = inst.unicast_src_ip
        peers: dict[object, Location] = {}
        for peer in inst.unicast_peers:
            if src is not None and peer.address == src:
                diags.error(peer.loc, f"unicast_peer {peer.address} is this node's own unicast_src_ip",
                            "the other nodes' addresses")
            if peer.address.version != inst.family:
                diags.error(peer.loc, f"unicast_peer {peer.address} is IPv{peer.address.version} but "
                                      f"{inst.name} runs over IPv{inst.family}", f"an IPv{inst.family} address")
            if peer.address in peers:
                diags.warning(peer.loc, f"unicast_peer {peer.address} listed twice (first at {peers[peer.address]})")
            peers.setdefault(peer.address, peer.loc)
        if src is not None and src.version != inst.family:
            diags.error(inst.loc, f"{inst.name}: unicast_src_ip {src} is IPv{src.version} but the VIPs are "
                                  f"IPv{inst.family}", f"an IPv{inst.family} source")


def _missing(refs: tuple[TrackRef, ...], known: dict[str, object], kind: str, owner: str,
             diags: Diagnostics) -> None:
    for ref in refs:
        if ref.name not in known:
            diags.error(ref.loc, f"{owner} tracks {kind} {ref.name!r}, which is not defined",
                        f"a {kind} block named {ref.name}")


def _references(cfg: Config, diags: Diagnostics) -> None:
    owners = [(f"vrrp_instance {i.name}", i.track_scripts, i.track_files) for i in cfg.instances]
    owners += [(f"vrrp_sync_group {g.name}", g.track_scripts, g.track_files) for g in cfg.sync_groups]
    for owner, scripts, files in owners:
        _missing(scripts, dict(cfg.scripts), "vrrp_script", owner, diags)
        _missing(files, dict(cfg.track_files), "track_file", owner, diags)


def _groups(cfg: Config, diags: Diagnostics) -> None:
    names = {i.name for i in cfg.instances}
    member_of: dict[str, str] = {}
    for group in cfg.sync_groups:
        for member in group.members:
            if member not in names:
                diags.error(group.loc, f"vrrp_sync_group {group.name} names {member!r}, which is not a "
                                       "vrrp_instance", "names of defined instances")
            elif member in member_of:
                diags.error(group.loc, f"{member} is in both {member_of[member]} and {group.name}",
                            "each instance in at most one sync group")
            else:
                member_of[member] = group.name
        if len(group.members) == 1:
            diags.warning(group.loc, f"vrrp_sync_group {group.name} has only 1 member - this probably "
                                     "isn't what you want")


def _vips(cfg: Config, diags: Diagnostics) -> None:
    holders: defaultdict[object, list[str]] = defaultdict(list)
    for inst in cfg.instances:
        if not inst.vips and inst.cloud is None:
            diags.warning(inst.loc, f"vrrp_instance {inst.name} has no virtual_ipaddress")
        for vip in inst.vips:
            if holders[vip.address]:
                diags.warning(vip.loc, f"{vip.address} is also a VIP of {', '.join(holders[vip.address])}")
            holders[vip.address].append(inst.name)
            if vip.label and not vip.label.startswith((vip.dev or inst.interface) + ":") \
                    and vip.label != (vip.dev or inst.interface):
                diags.warning(vip.loc, f"label {vip.label} does not start with "
                                       f"'{vip.dev or inst.interface}:'; Linux will refuse it")
