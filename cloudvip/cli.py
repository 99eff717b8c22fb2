"""The `cloudvip` command line: one source for `--help`, the man page cloudvip(8) and bash completion."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from . import __version__

if TYPE_CHECKING:
    from .config import Config, VrrpInstance

from .paths import COMPANION_PATH, DEFAULT_PATH  # the config package is imported only by the commands that read
# one: `cloudvip notify`, run by keepalived on every transition, must start in milliseconds


def _instance_summary(cfg: Config, inst: VrrpInstance) -> str:
    auth = inst.auth.auth_type.name if inst.auth else "no auth"
    if inst.auth_hmac is not None:
        ah = inst.auth_hmac
        auth = (f"auth_hmac key {ah.active_key} of {len(ah.keys)}, {ah.mode.value}, "
                f"{'time window ' + str(ah.time_window) + ' s' if ah.anti_replay_time else 'monotonic'}")
    parts = [f"{inst.name}: {inst.interface} vrid {inst.vrid} priority {inst.priority}",
             f"v{inst.version}", auth, f"advert {inst.advert_int:g}s"]
    if inst.state_hint:
        parts.append(f"state {inst.state_hint}")
    if inst.nopreempt:
        parts.append("nopreempt")
    elif inst.preempt_delay:
        parts.append(f"preempt_delay {inst.preempt_delay:g}s")
    if inst.unicast_peers:
        src = inst.unicast_src_ip or "(interface address)"
        parts.append(f"unicast {src} -> {', '.join(str(p.address) for p in inst.unicast_peers)}")
    else:
        parts.append("multicast")
    lines = ["  " + ", ".join(parts)]
    if inst.vips:
        lines.append("    VIPs: " + ", ".join(
            str(v.interface) + (f" label {v.label}" if v.label else "") + (f" dev {v.dev}" if v.dev else "")
            for v in inst.vips))
    tracked = [f"script {t.name}({_weight(cfg, t.name, t.weight)})" for t in inst.track_scripts]
    tracked += [f"interface {t.name}({_fmt_weight(t.weight or 0)})" for t in inst.track_interfaces]
    tracked += [f"file {t.name}" for t in inst.track_files]
    if tracked:
        lines.append("    tracks: " + ", ".join(tracked))
    if inst.cloud:
        lines.append(f"    cloud: {inst.cloud.provider}")
    group = cfg.group_of(inst.name)
    if group:
        lines.append(f"    sync group: {group.name}")
    return "\n".join(lines)


def _weight(cfg: Config, name: str, override: int | None) -> str:
    script = cfg.scripts.get(name)
    return _fmt_weight(override if override is not None else (script.weight if script else 0))


def _fmt_weight(weight: int) -> str:
    return f"{weight:+d}" if weight else "fault"


def check_config(args: argparse.Namespace) -> int:
    path = Path(args.file)
    from .config import ConfigError, Severity
    from .provider import load_checked

    try:
        cfg = load_checked(path, config_id=args.config_id)
    except ConfigError as exc:
        for diag in exc.diagnostics:
            print(diag, file=sys.stderr)
        errors = sum(d.severity is Severity.ERROR for d in exc.diagnostics)
        print(f"{path}: {errors} error(s); configuration NOT valid", file=sys.stderr)
        return 1
    for diag in cfg.diagnostics:
        print(diag, file=sys.stderr)
    n = len(cfg.instances)
    extra = f", {len(cfg.sync_groups)} sync group(s)" if cfg.sync_groups else ""
    if cfg.keepalived_conf is not None:
        extra += f" (companion file for {cfg.keepalived_conf})"
    print(f"{path}: OK, {n} instance{'s' if n != 1 else ''}{extra}")
    for inst in cfg.instances:
        print(_instance_summary(cfg, inst))
    return _keepalived_verdict(cfg) if args.keepalived_check else 0


def _keepalived_verdict(cfg: Config) -> int:
    """For a keepalived.conf that a stock keepalived runs (companion mode): does it accept it?"""
    from .config.companion_file import calls_cloudvip_notify, keepalived_accepts

    kconf = cfg.keepalived_conf or (cfg.path if calls_cloudvip_notify(cfg) else None)
    if kconf is None:
        return 0
    verdict = keepalived_accepts(kconf)
    if not verdict.ran:
        print(f"{kconf}: keepalived is not installed here: `keepalived -t` not run")
        return 0
    if verdict.ok:
        print(f"{kconf}: `keepalived -t` accepts it")
        return 0
    if verdict.inconclusive:
        print(f"{kconf}: warning: {verdict.output}", file=sys.stderr)
        return 0
    print(f"{kconf}: `keepalived -t` REJECTS it:\n{verdict.output}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    import asyncio

    from . import logs
    from .agent import Agent

    logs.setup(args.log_level, args.log_json)
    pid_file = Path(args.pid_file) if args.pid_file else None
    if pid_file is not None:
        pid_file.write_text(f"{os.getpid()}\n")
    from .companion_events import socket_path

    control = None if args.no_control else (args.control_socket or socket_path(args.file, "agent", args.config_id))
    try:
        return asyncio.run(Agent(Path(args.file), args.config_id, control, args.metrics).run())
    finally:
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)


def companion(args: argparse.Namespace) -> int:
    import asyncio

    from . import logs
    from .companion import Companion
    from .companion_events import socket_path

    logs.setup(args.log_level, args.log_json)
    sock = args.socket or socket_path(args.file, "companion", args.config_id)
    return asyncio.run(Companion(Path(args.file), args.config_id, sock, args.fifo, args.metrics).run())


def notify(args: argparse.Namespace) -> int:
    """keepalived's notify script: hand the event to the companion, or move it here."""
    import socket

    from .companion_events import EventError, parse_event, socket_path

    try:
        ev = parse_event(args.event)
    except EventError as exc:
        print(f"cloudvip notify: {exc}", file=sys.stderr)
        return 2
    sock_path = args.socket or socket_path(args.file, "companion", args.config_id)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(sock_path)
            sock.sendall(ev.words().encode() + b"\n")
            answer = sock.recv(4096).decode(errors="replace").strip()
        if args.verbose or answer.startswith("error"):
            print(f"cloudvip notify: {answer}", file=sys.stderr)
        return 1 if answer.startswith("error") else 0
    except (FileNotFoundError, ConnectionRefusedError):
        import asyncio

        from . import logs
        from .companion import move_once

        logs.setup("info")
        print(f"cloudvip notify: no companion listens on {sock_path}: moving the VIP myself", file=sys.stderr)
        return asyncio.run(move_once(Path(args.file), args.config_id, ev))
    except OSError as exc:
        print(f"cloudvip notify: companion on {sock_path}: {exc}", file=sys.stderr)
        return 1


def _control(args: argparse.Namespace, payload: dict[str, object]) -> dict[str, object] | None:
    from .companion_events import socket_path
    from .control import request

    path = args.socket or socket_path(args.file, "agent", args.config_id)
    try:
        return request(path, payload)
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"cloudvip: no agent runs for {args.file} (no control socket {path})", file=sys.stderr)
    except OSError as exc:
        print(f"cloudvip: control socket {path}: {exc}", file=sys.stderr)
    return None


def status(args: argparse.Namespace) -> int:
    import json

    from .status_table import render

    reply = _control(args, {"cmd": "status"})
    if reply is None:
        return 1
    print(json.dumps(reply, indent=2) if args.json else render(reply))
    return 0 if reply.get("ok") else 1


def override(args: argparse.Namespace) -> int:
    cmd = "undo" if args.undo else args.command
    reply = _control(args, {"cmd": cmd, "instance": args.instance})
    if reply is None:
        return 1
    if not reply.get("ok"):
        print(f"cloudvip {args.command}: {reply.get('error')}", file=sys.stderr)
        return 1
    inst = reply["instance"]
    assert isinstance(inst, dict)
    what = {"takeover": "taking over (priority raised)", "release": "released (in FAULT, sending priority 0)",
            "undo": "override undone"}[cmd]
    print(f"{inst['name']}: {what}; now {inst['state']}, priority {inst['priority']['effective']}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    import asyncio

    from . import logs
    from .doctor.findings import exit_code, render, to_json
    from .doctor.run import Options, diagnose

    logs.setup("error" if args.json else "warning")
    findings = asyncio.run(diagnose(Path(args.file), args.config_id,
                                    Options(listen=args.listen, control_socket=args.socket)))
    print(to_json(findings) if args.json else render(findings))
    return exit_code(findings)


def lab(args: argparse.Namespace) -> int:
    """The lab is not in the product: it is the cloudvip-lab distribution (lab/ in the source)."""
    try:
        from cloudvip_lab.demo import main as lab_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "cloudvip_lab":
            raise
        print("cloudvip lab: the lab is not installed: it is the cloudvip-lab distribution (lab/ in "
              "cloudvip's source tree; `make lab` installs it)", file=sys.stderr)
        return 2
    return lab_main(args)


def _config_args(p: argparse.ArgumentParser, default: Path = DEFAULT_PATH) -> None:
    p.add_argument("-f", "--file", default=str(default), help=f"config file (default {default})")
    p.add_argument("-i", "--config-id", default=None,
                   help="config id for @id conditional lines (default: short host name)")


DESCRIPTION = "Keep a virtual IP on the healthy VM of a pair, moved through the cloud's API."
#: cloudvip(8)'s DESCRIPTION, below the one line
ABOUT = (
    "cloudvip elects a master among its peers with VRRP (RFC 3768 version 2, RFC 5798 version 3, unicast or "
    "multicast), wire-compatible with keepalived 2.2 and 2.4 including auth_hmac, and reads keepalived.conf as it "
    "is. A `cloud` block in a vrrp_instance moves the VIP through the cloud's API when this node becomes master: "
    "AWS (secondary IP, Elastic IP, route table), Hetzner Cloud (floating IP, alias IP), Google Cloud (alias IP, "
    "route) and Azure (route table, IP configuration); without one, the address is added with gratuitous ARP or "
    "unsolicited neighbour advertisements. It runs as the agent (`cloudvip run`, in place of keepalived) or as "
    "a companion to a stock keepalived (`cloudvip companion` and `cloudvip notify`).")

#: the parts of cloudvip(8) that are not options: shown by `cloudvip --help` too, so that they cannot drift
SECTIONS: dict[str, str] = {
    "SIGNALS": (
        "run: SIGTERM or SIGINT sends priority-0 adverts, releases the VIPs and exits 0 (the peer takes over "
        "at once); SIGHUP reloads the config: what can change in place does (a master stays master), an "
        "instance whose identity changed (interface, VRID, VIPs) restarts.\n"
        "companion: SIGTERM or SIGINT stops taking events and exits 0; the cloud keeps pointing where it "
        "points. It has no reload: restart it to read a changed file."),
    "FILES": (
        f"{DEFAULT_PATH}  the config of `run` (keepalived's own file, with cloud blocks)\n"
        f"{COMPANION_PATH}  the companion's file: the cloud blocks and the keepalived.conf they complete\n"
        "/run/cloudvip/, /run/cloudvip-companion/  control and event sockets, one per config file\n"
        "/var/lib/cloudvip/  auth_hmac sequence state (survives restarts)\n"
        "/etc/default/cloudvip, /etc/default/cloudvip-companion  the units' settings (CLOUDVIP_CONFIG, "
        "CLOUDVIP_ARGS), in the Debian package"),
    "EXIT STATUS": (
        "0  success; run and companion: stopped by a signal\n"
        "1  an invalid config, a failed check (doctor), no agent running (status, takeover, release), "
        "or a start that failed (run, companion)\n"
        "2  a command line error, or an event notify does not understand"),
    "SEE ALSO": "cloudvip.conf(5), keepalived(8), keepalived.conf(5), systemctl(1)",
}


def _epilog() -> str:
    return "\n\n".join(f"{title.lower()}:\n" + "\n".join(
        textwrap.fill(line, 78, initial_indent="  ", subsequent_indent="      ") for line in text.splitlines())
        for title, text in SECTIONS.items())


def build_parser(commands: dict[str, argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
    """The whole command line; `commands`, when given, receives each command's parser (for the man page)."""
    parser = argparse.ArgumentParser(prog="cloudvip", description=DESCRIPTION,
                                     epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cloudvip {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs["help"][0].upper() + kwargs["help"][1:] + ".")
        command = subparsers.add_parser(name, **kwargs)
        if commands is not None:
            commands[name] = command
        return command

    check = add("check-config", help="validate a keepalived.conf (or a companion file with its "
                                                "keepalived.conf) and summarise its instances")
    _config_args(check)
    check.add_argument("--no-keepalived-check", dest="keepalived_check", action="store_false",
                       help="do not run `keepalived -t` on a keepalived.conf meant for stock keepalived")
    check.set_defaults(func=check_config)
    agent = add("run", help="run the VRRP agent for every instance of the config")
    _config_args(agent)
    agent.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                       help="the least severe messages logged (default info)")
    agent.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    agent.add_argument("--pid-file", default=None, help="write the pid here (default: none)")
    agent.add_argument("--control-socket", default=None,
                       help="root-only socket for status/takeover/release (default: derived from -f)")
    agent.add_argument("--no-control", action="store_true", help="no control socket")
    agent.add_argument("--metrics", default=None, metavar="[ADDR:]PORT",
                       help="serve Prometheus metrics (default: off; ADDR default 127.0.0.1)")
    agent.set_defaults(func=run)
    comp = add("companion", help="move cloud VIPs for a stock keepalived (its notify events)")
    _config_args(comp, COMPANION_PATH)
    comp.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                      help="the least severe messages logged (default info)")
    comp.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    comp.add_argument("--socket", default=None, help="socket for `cloudvip notify` (default: derived from -f)")
    comp.add_argument("--fifo", default=None, help="keepalived's notify_fifo to read (default: global_defs')")
    comp.add_argument("--metrics", default=None, metavar="[ADDR:]PORT",
                      help="serve Prometheus metrics (default: off; ADDR default 127.0.0.1)")
    comp.set_defaults(func=companion)
    note = add("notify", help="keepalived's notify script: hand the event to the companion",
                          description="Use as keepalived's `notify \"cloudvip notify\"` (it appends TYPE NAME "
                                      "STATE PRIORITY) or `notify_master \"cloudvip notify master VI_1\"`.")
    _config_args(note, COMPANION_PATH)
    note.add_argument("--socket", default=None, help="the companion's socket (default: derived from -f)")
    note.add_argument("-v", "--verbose", action="store_true", help="print the companion's answer")
    note.add_argument("event", nargs="+", help="TYPE NAME STATE [PRIORITY], or STATE NAME")
    note.set_defaults(func=notify)
    st = add("status", help="the running agent's instances, priorities, cloud state")
    _config_args(st)
    st.add_argument("--json", action="store_true", help="the full status as JSON")
    st.add_argument("--socket", default=None, help="the agent's control socket (default: derived from -f)")
    st.set_defaults(func=status)
    for verb, text in (("takeover", "planned maintenance: make this node master (priority raised)"),
                       ("release", "planned maintenance: hand the VIP over (FAULT, priority 0) until undone")):
        p = add(verb, help=text)
        _config_args(p)
        p.add_argument("instance", help="the vrrp_instance")
        p.add_argument("--undo", action="store_true", help="remove the override")
        p.add_argument("--socket", default=None, help="the agent's control socket (default: derived from -f)")
        p.set_defaults(func=override)
    doc = add("doctor", help="pre-flight checks: host, firewall, cloud permissions, peers; changes "
                                        "nothing", description="Check everything a failover needs, before the "
                                        "first real outage. Reads the config like `run`; makes no change anywhere "
                                        "(no cloud write, no address, no advert). Exit 1 when a check failed.")
    _config_args(doc)
    doc.add_argument("--json", action="store_true", help="the findings as JSON")
    doc.add_argument("--no-listen", dest="listen", action="store_false",
                     help="do not listen for the peers' adverts (three advert intervals)")
    doc.add_argument("--socket", default=None, help="a running agent's control socket (default: derived from -f)")
    doc.set_defaults(func=doctor)
    demo = add("lab", help="show a real failover in throw-away network namespaces (root)")
    demo.add_argument("--nodes", type=int, default=3, choices=[2, 3], help="how many agents (default 3)")
    demo.add_argument("--cloud", choices=["aws", "hetzner", "gcp", "azure"], default=None,
                      help="move the VIP through an emulated cloud API on 127.0.0.1")
    demo.add_argument("--mode", default=None,
                      choices=["secondary_ip", "elastic_ip", "route_table", "floating_ip", "alias_ip", "route",
                               "ip_config"],
                      help="how the VIP moves: aws secondary_ip (default), elastic_ip, route_table; "
                           "hetzner floating_ip (default), alias_ip; gcp alias_ip (default), route; "
                           "azure route_table (default), ip_config")
    demo.add_argument("--companion", action="store_true",
                      help="with --cloud: a hardened stock keepalived elects, a cloudvip companion moves the VIP")
    demo.add_argument("--profile", choices=["realistic", "instant"], default="realistic",
                      help="with --cloud: realistic (default: the API 30 ms away over HTTPS, the data plane "
                           "following it seconds later, reads lagging writes) or instant")
    demo.add_argument("--rtt", type=float, default=None, metavar="SECONDS",
                      help="with --cloud: the round trip to the API (replaces the profile's)")
    demo.add_argument("--propagation", type=float, default=None, metavar="SECONDS",
                      help="with --cloud: how long the data plane takes to follow the cloud (replaces the profile's)")
    demo.set_defaults(func=lab)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
