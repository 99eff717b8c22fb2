"""The host's part of `cloudvip doctor`: interfaces and addresses, the firewall's verdict on
adverts and metadata calls, the clock, the scripts, keepalived's own check. Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import Config, VrrpInstance
from ..config.model import IPAddress, ScriptCommand
from ..packet import VRRP_MCAST_V4, VRRP_MCAST_V6
from ..scripts import RunAs, ScriptError, ScriptRunner, default_run_as
from .clock import ClockState
from .findings import Finding, fail, ok, warn
from .firewall import IPPROTO_TCP, IPPROTO_VRRP, Outcome, Packet, Ruleset, Verdict, judge

if TYPE_CHECKING:
    from ..hostnet import HostNetwork

HOST = "host"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where an instance sends its adverts from (None: the interface is missing or has no address)."""

    ifname: str
    ifindex: int
    local: IPAddress | None


async def interface_checks(host: HostNetwork, inst: VrrpInstance) -> tuple[list[Finding], Endpoint | None]:
    name = inst.name
    try:
        link = await host.link(inst.interface)
    except LookupError:
        return [fail(name, "interface", f"{inst.interface} does not exist on this host",
                     f"set `interface` in vrrp_instance {name} to one of: `ip -br link`")], None
    found = [ok(name, "interface", f"{inst.interface} is up") if link.up else
             fail(name, "interface", f"{inst.interface} is down", f"ip link set {inst.interface} up")]
    vips = {v.address for v in inst.vips + inst.vips_excluded}
    if inst.unicast_src_ip is not None:
        if await host.has_address(link.index, inst.unicast_src_ip):
            found.append(ok(name, "source address", f"unicast_src_ip {inst.unicast_src_ip} is on {inst.interface}"))
            return found, Endpoint(link.name, link.index, inst.unicast_src_ip)
        found.append(fail(name, "source address", f"unicast_src_ip {inst.unicast_src_ip} is not on {inst.interface}: "
                          "no advert can be sent from it",
                          f"set unicast_src_ip to an address of {inst.interface} "
                          f"(`ip -br addr show {inst.interface}`)"))
        return found, Endpoint(link.name, link.index, None)
    local = await host.primary_address(link.index, inst.family, vips)
    if local is None:
        found.append(fail(name, "source address", f"{inst.interface} has no IPv{inst.family} address to send from",
                          f"add one, or set unicast_src_ip in vrrp_instance {name}"))
    else:
        found.append(ok(name, "source address", f"{local} ({inst.interface}'s primary address)"))
    return found, Endpoint(link.name, link.index, local)


def _allow_rule(v: Verdict, pkt: Packet) -> str:
    """The rule that lets `pkt` through, in the language of the ruleset that dropped it."""
    fam = "ip" if pkt.saddr.version == 4 else "ip6"
    peer = pkt.saddr if pkt.hook == "input" else pkt.daddr
    side = "saddr" if pkt.hook == "input" else "daddr"
    what = f"{fam} {side} {peer} meta l4proto vrrp" if pkt.proto == IPPROTO_VRRP else \
        f"{fam} {side} {peer} tcp dport {pkt.dport}"
    if v.where.startswith("nftables table "):
        table, _, chain_part = v.where[len("nftables table "):].partition(" chain ")
        chain = chain_part.split(":")[0].split(" policy")[0]
        return f"nft insert rule {table} {chain} {what} accept"
    tool = v.where.split()[0] if v.where.split() else "iptables"
    chain = "INPUT" if pkt.hook == "input" else "OUTPUT"
    flag = "-s" if pkt.hook == "input" else "-d"
    proto = "vrrp" if pkt.proto == IPPROTO_VRRP else f"tcp --dport {pkt.dport}"
    return f"{tool} -I {chain} {flag} {peer} -p {proto} -j ACCEPT"


def firewall_finding(scope: str, check: str, rulesets: list[Ruleset], pkt: Packet, what: str) -> Finding:
    v = judge(rulesets, pkt)
    if v.outcome is Outcome.ACCEPT:
        return ok(scope, check, f"{what}: allowed by the host firewall")
    if v.outcome is Outcome.DROP:
        return fail(scope, check, f"{what}: DROPPED by {v.where}", _allow_rule(v, pkt))
    return warn(scope, check, f"{what}: may be dropped by {v.where} (a match doctor cannot evaluate)",
                f"check that rule; to be sure: {_allow_rule(v, pkt)}")


def advert_firewall(inst: VrrpInstance, ep: Endpoint, peers: list[IPAddress], rulesets: list[Ruleset]) -> list[Finding]:
    """Protocol 112 in from each peer and out to it (to the group when multicast)."""
    if ep.local is None:
        return []
    out: list[Finding] = []
    targets = peers or [VRRP_MCAST_V4 if inst.family == 4 else VRRP_MCAST_V6]
    for peer in targets:
        if peers:
            out.append(firewall_finding(inst.name, "firewall in", rulesets,
                                        Packet("input", IPPROTO_VRRP, peer, ep.local, ep.ifname),
                                        f"adverts from {peer}"))
        out.append(firewall_finding(inst.name, "firewall out", rulesets,
                                    Packet("output", IPPROTO_VRRP, ep.local, peer, ep.ifname), f"adverts to {peer}"))
    return out


def metadata_firewall(scope: str, url: str, local: IPAddress | None, ifname: str,
                      rulesets: list[Ruleset]) -> Finding | None:
    """TCP to the metadata service (a cloud provider's identity): None when not an IP URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        addr = ip_address(parts.hostname or "")
    except ValueError:
        return None
    src = local or (ip_address("0.0.0.0") if addr.version == 4 else ip_address("::"))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return firewall_finding(scope, "firewall metadata", rulesets,
                            Packet("output", IPPROTO_TCP, src, addr, ifname, port), f"{addr}:{port}")


def clock_finding(cfg: Config, clock: Callable[[], ClockState | None]) -> Finding:
    state = clock()
    needs = [i.name for i in cfg.instances if i.auth_hmac is not None and i.auth_hmac.anti_replay_time]
    if state is None:
        return warn(HOST, "clock", "cannot read the kernel's synchronisation state (adjtimex)")
    if state.synchronised:
        return ok(HOST, "clock", f"synchronised (max error {state.max_error_us / 1000:g} ms)")
    fix = "install and enable a time daemon: apt install chrony (or systemctl enable --now systemd-timesyncd)"
    if needs:
        return fail(HOST, "clock", f"NOT synchronised, and {', '.join(needs)} use auth_hmac with time "
                    "anti-replay: adverts from a peer whose clock differs by more than the window are dropped", fix)
    return warn(HOST, "clock", "not synchronised: cloud API signatures (AWS SigV4) and TLS need a right clock", fix)


def script_findings(cfg: Config) -> list[Finding]:
    """Every script the config runs: there, executable, passing enable_script_security, and its
    user existing; the way the agent (and keepalived) will judge them."""
    gd = cfg.global_defs
    runner = ScriptRunner(default_run_as(gd.script_user, gd.script_group, gd.enable_script_security),
                          secure=gd.enable_script_security)
    used = {t.name for i in cfg.instances for t in i.track_scripts}
    commands: list[tuple[str, ScriptCommand, RunAs | None]] = []
    for name in sorted(used):
        script = cfg.scripts.get(name)
        if script is not None and script.script is not None:
            run_as = RunAs(script.user, script.group) if script.user else None
            commands.append((f"vrrp_script {name}", script.script, run_as))
    for cmd in cfg.notify_commands():
        commands.append(("notify", cmd, RunAs(cmd.user, cmd.group) if cmd.user else None))
    if gd.notify_fifo_script is not None:
        commands.append(("notify_fifo_script", gd.notify_fifo_script, None))
    out: list[Finding] = []
    seen: set[tuple[str, ...]] = set()
    for what, cmd, run_as in commands:
        if cmd.argv in seen:
            continue
        seen.add(cmd.argv)
        try:
            path = runner.check(cmd.argv)
            (run_as or runner.run_as).ids()
        except ScriptError as exc:
            out.append(fail(HOST, "script", f"{what}: {exc}", _script_fix(str(exc), cmd, gd.enable_script_security)))
            continue
        user = (run_as or runner.run_as).user or "root"
        out.append(ok(HOST, "script", f"{what}: {path} runs as {user}"))
    return out


def _script_fix(error: str, cmd: ScriptCommand, secure: bool) -> str:
    path = cmd.argv[0]
    if "no such file" in error or "not found" in error:
        return f"install {path}, or fix the path in the config"
    if "executable" in error:
        return f"chmod 755 {path}"
    if "writable" in error or "secure" in error:
        return f"chown root:root {path} and every directory above it; chmod go-w them" if secure else ""
    if "user" in error:
        return "useradd --system --no-create-home keepalived_script, or set script_user in global_defs"
    return ""


def keepalived_t_finding(cfg: Config) -> Finding | None:
    """Companion mode: stock keepalived runs the keepalived.conf: does it accept it?"""
    from ..config.companion_file import calls_cloudvip_notify, keepalived_accepts

    kconf: Path | None = cfg.keepalived_conf or (cfg.path if calls_cloudvip_notify(cfg) else None)
    if kconf is None:
        return None
    verdict = keepalived_accepts(kconf)
    if not verdict.ran:
        return warn(HOST, "keepalived -t", f"{kconf}: keepalived is not installed here", "apt install keepalived")
    if verdict.ok:
        return ok(HOST, "keepalived -t", f"{kconf}: accepted")
    if verdict.inconclusive:
        return warn(HOST, "keepalived -t", f"{kconf}: {verdict.output}")
    last = verdict.output.splitlines()[-1] if verdict.output else ""
    return fail(HOST, "keepalived -t", f"{kconf}: REJECTED: {last}", f"keepalived -t -l -f {kconf}   # every error")
