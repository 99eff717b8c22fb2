"""Cross-checks over the whole configuration, the ones an operator would want."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import TypeVar

from .diagnostics import Diagnostics, Location
from .model import Config, SyncGroup, TrackRef, VrrpInstance


def check(cfg: Config, diags: Diagnostics) -> Config:
    """Cross-check; the config as keepalived goes on to run it (references to undefined scripts
    and files, and sync-group members that are not instances, dropped with a warning)."""
    _names(cfg, diags)
    _vrids(cfg, diags)
    _unicast(cfg, diags)
    cfg = _references(cfg, diags)
    cfg = _groups(cfg, diags)
    _vips(cfg, diags)
    return cfg


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


def _defined(refs: tuple[TrackRef, ...], known: Mapping[str, object], kind: str, owner: str,
             diags: Diagnostics) -> tuple[TrackRef, ...]:
    """keepalived: "track script NAME not found, ignoring...": the reference is dropped."""
    for ref in refs:
        if ref.name not in known:
            diags.warning(ref.loc, f"{owner} tracks {kind} {ref.name!r}, which is not defined: ignored "
                                   f"(keepalived: \"track {kind.replace('vrrp_', '').replace('track_', '')} "
                                   f"{ref.name} not found, ignoring\")")
    return tuple(ref for ref in refs if ref.name in known)


_Owner = TypeVar("_Owner", VrrpInstance, SyncGroup)


def _references(cfg: Config, diags: Diagnostics) -> Config:
    scripts, files, procs = dict(cfg.scripts), dict(cfg.track_files), dict(cfg.track_processes)

    def defined_only(obj: _Owner, owner: str) -> _Owner:
        return replace(obj, track_scripts=_defined(obj.track_scripts, scripts, "vrrp_script", owner, diags),
                       track_files=_defined(obj.track_files, files, "track_file", owner, diags),
                       track_processes=_defined(obj.track_processes, procs, "vrrp_track_process", owner, diags))

    return replace(cfg, instances=tuple(defined_only(i, f"vrrp_instance {i.name}") for i in cfg.instances),
                   sync_groups=tuple(defined_only(g, f"vrrp_sync_group {g.name}") for g in cfg.sync_groups))


def _groups(cfg: Config, diags: Diagnostics) -> Config:
    names = {i.name for i in cfg.instances}
    member_of: dict[str, str] = {}
    groups = []
    for group in cfg.sync_groups:
        members = []
        for member in group.members:
            if member not in names:
                diags.warning(group.loc, f"vrrp_sync_group {group.name} names {member!r}, which is not a "
                                         "vrrp_instance: ignored (as keepalived does)")
            elif member in member_of:
                diags.warning(group.loc, f"{member} is in both {member_of[member]} and {group.name}: it stays in "
                                         f"{member_of[member]} (as keepalived does)")
            else:
                member_of[member] = group.name
                members.append(member)
        if not members:
            diags.warning(group.loc, f"vrrp_sync_group {group.name} has no members: removed (as keepalived does)")
            continue
        if len(members) == 1:
            diags.warning(group.loc, f"vrrp_sync_group {group.name} has only 1 member - this probably "
                                     "isn't what you want")
        groups.append(replace(group, members=tuple(members)))
    return replace(cfg, sync_groups=tuple(groups))


def _vips(cfg: Config, diags: Diagnostics) -> None:
    holders: defaultdict[object, list[str]] = defaultdict(list)
    for inst in cfg.instances:
        if not inst.vips and inst.cloud is None and not inst.no_virtual_ipaddress:
            diags.warning(inst.loc, f"vrrp_instance {inst.name} has no virtual_ipaddress")
        for vip in inst.vips:
            if holders[vip.address]:
                diags.warning(vip.loc, f"{vip.address} is also a VIP of {', '.join(holders[vip.address])}")
            holders[vip.address].append(inst.name)
            if vip.label and not vip.label.startswith((vip.dev or inst.interface) + ":") \
                    and vip.label != (vip.dev or inst.interface):
                diags.warning(vip.loc, f"label {vip.label} does not start with "
                                       f"'{vip.dev or inst.interface}:'; Linux will refuse it")
