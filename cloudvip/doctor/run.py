"""`cloudvip doctor`: every check for a config, in the order a person fixes them (host, then
each instance: interface, firewall, cloud, peers). Changes nothing: the providers only read,
the VRRP sockets only listen."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import Config, ConfigError, Severity, VrrpInstance
from ..config.model import IPAddress
from ..provider import Provider, ProviderContext, load_checked, load_provider, provider_name
from .clock import ClockState, kernel_clock
from .findings import Finding, fail, ok, warn
from .firewall import Ruleset, host_rulesets
from .host import (HOST, Endpoint, advert_firewall, clock_finding, interface_checks, keepalived_t_finding,
                   metadata_firewall, script_findings)
from .listen import listen, listen_seconds, peer_findings

if TYPE_CHECKING:
    from ..hostnet import HostNetwork

log = logging.getLogger("cloudvip.doctor")
MAX_CONFIG_WARNINGS = 5


@dataclass
class Options:
    clock: Callable[[], ClockState | None] = kernel_clock
    rulesets: Callable[[], tuple[list[Ruleset], list[str]]] = host_rulesets
    listen: bool = True  # listen for the peers' adverts (off: the cloud checks alone)
    #: the running agent's control socket, to learn this node's state (None: derived from -f)
    control_socket: str | None = None


@dataclass
class _Instance:
    inst: VrrpInstance
    findings: list[Finding] = field(default_factory=list)
    endpoint: Endpoint | None = None
    provider: Provider | None = None
    peers: list[IPAddress] = field(default_factory=list)


async def diagnose(path: Path, config_id: str | None = None, opts: Options | None = None) -> list[Finding]:
    opts = opts or Options()
    try:
        cfg = load_checked(path, config_id)
    except ConfigError as exc:
        errors = [d for d in exc.diagnostics if d.severity is Severity.ERROR]
        return [fail(HOST, "config", str(d), "cloudvip check-config -f " + str(path)) for d in errors]
    findings = _config_findings(cfg)
    rulesets, problems = opts.rulesets()
    findings += [warn(HOST, "firewall", p, "run cloudvip doctor as root") for p in problems]
    findings.append(clock_finding(cfg, opts.clock))
    findings += script_findings(cfg)
    kt = keepalived_t_finding(cfg)
    if kt is not None:
        findings.append(kt)

    from ..hostnet import HostNetwork

    host = HostNetwork()
    await host.open()
    items = [_Instance(inst) for inst in cfg.instances]
    try:
        for item in items:
            item.findings, item.endpoint = await interface_checks(host, item.inst)
        listening = [(i.inst, i.endpoint) for i in items if i.endpoint is not None]
        seconds = max((listen_seconds(inst) for inst, _ in listening), default=0.0)
        heard_task = asyncio.create_task(listen(listening, seconds)) if opts.listen and listening else None
        for item in items:
            await _provider_checks(cfg, host, item, rulesets)
        heard = await heard_task if heard_task is not None else []
        states = _local_states(path, config_id, opts.control_socket)
        for h in heard:
            item = next(i for i in items if i.inst is h.inst)
            item.findings += peer_findings(h, item.peers, states.get(h.inst.name), await _carries(host, h.inst))
    finally:
        for item in items:
            if item.provider is not None:
                await _close(item.provider)
        await host.close()
    return findings + [f for item in items for f in item.findings]


def _config_findings(cfg: Config) -> list[Finding]:
    warnings = [d for d in cfg.diagnostics if d.severity is not Severity.ERROR]
    out = [warn(HOST, "config", str(d)) for d in warnings[:MAX_CONFIG_WARNINGS]]
    if len(warnings) > MAX_CONFIG_WARNINGS:
        out.append(warn(HOST, "config", f"{len(warnings) - MAX_CONFIG_WARNINGS} more warning(s)",
                        f"cloudvip check-config -f {cfg.path}"))
    n = len(cfg.instances)
    return [ok(HOST, "config", f"{cfg.path}: {n} instance{'s' if n != 1 else ''}")] + out


async def _provider_checks(cfg: Config, host: HostNetwork, item: _Instance, rulesets: list[Ruleset]) -> None:
    inst = item.inst
    item.peers = [p.address for p in inst.unicast_peers]
    ilog = logging.getLogger(f"cloudvip.doctor.{inst.name}")
    ctx = ProviderContext(inst, cfg.global_defs, host, ilog,
                          wanted=lambda: False, manage_host=cfg.keepalived_conf is None)
    try:
        provider = load_provider(provider_name(inst))(ctx)
    except Exception as exc:  # the config was checked: this is the plugin's fault
        item.findings.append(fail(inst.name, "provider", f"{provider_name(inst)}: {type(exc).__name__}: {exc}",
                                  "reinstall the provider plugin"))
        return
    item.provider = provider
    ep = item.endpoint
    if provider.metadata_url and ep is not None:
        md = metadata_firewall(inst.name, provider.metadata_url, ep.local, ep.ifname, rulesets)
        if md is not None:
            item.findings.append(md)
    try:
        found = await provider.doctor()
    except Exception as exc:  # a bug of ours, or of a plugin: said, never hidden
        log.exception("%s: the %s provider's checks failed", inst.name, provider.name)
        found = [fail(inst.name, f"{provider.name} checks", f"failed: {type(exc).__name__}: {exc}",
                      "a bug: please report it with this output")]
    item.findings += found
    item.peers += [p for p in provider.discovered if p not in item.peers]
    if provider.peer_refresh is None and inst.cloud is not None and not inst.unicast_peers:
        item.findings.append(fail(inst.name, "unicast", "no unicast_peer: VRRP would use multicast, which no "
                                  "cloud network carries", "list the other nodes: unicast_peer { ADDRESS }, or "
                                  "let the cloud block find them (peer_tag / peer_label)"))
    if ep is not None:
        item.findings += advert_firewall(inst, ep, item.peers, rulesets)


def _local_states(path: Path, config_id: str | None, control_socket: str | None) -> dict[str, str]:
    """This node's state per instance, from an agent running here with this config ({} if none)."""
    from ..companion_events import socket_path
    from ..control import request

    sock = control_socket or socket_path(str(path), "agent", config_id)
    try:
        reply = request(sock, {"cmd": "status"}, timeout=2.0)
    except (OSError, ValueError):
        return {}
    instances = reply.get("instances", [])
    return {str(i.get("name")): str(i.get("state")) for i in instances if isinstance(i, dict)} \
        if isinstance(instances, list) else {}


async def _carries(host: HostNetwork, inst: VrrpInstance) -> bool:
    try:
        return bool(inst.vips) and await host.carries(inst)
    except LookupError:
        return False


async def _close(provider: Provider) -> None:
    try:
        await provider.close()
    except Exception:  # nothing of a provider's shutdown may hide the report
        log.debug("closing the %s provider", provider.name, exc_info=True)
