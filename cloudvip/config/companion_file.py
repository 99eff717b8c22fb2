"""The companion file: cloudvip's settings for a stock keepalived, where keepalived never reads them.

    keepalived_config /etc/keepalived/keepalived.conf

    vrrp_instance VI_1 {
        cloud aws {
            mode secondary_ip
        }
    }

keepalived.conf stays a file that `keepalived -t` accepts; this file names its instances and
gives each its `cloud` block, in the very syntax the agent reads inside a vrrp_instance. Loaded
together they are one Config, as if the blocks stood in keepalived.conf.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from .diagnostics import ConfigError, Diagnostics, Location
from .model import CloudBlock, Config, VrrpInstance
from .parser import Parser
from .syntax import Node

MARKER = "keepalived_config"
KEEPALIVED_T_TIMEOUT = 30.0


def is_companion_file(nodes: list[Node]) -> bool:
    return any(n.keyword == MARKER for n in nodes)


def cloudvip_only_keywords(cfg: Config) -> list[tuple[Location, str]]:
    """What stock keepalived does not know in a keepalived.conf (it rejects or drops each)."""
    found: list[tuple[Location, str]] = []
    for inst in cfg.instances:
        if inst.cloud is not None:
            found.append((inst.cloud.loc, f"vrrp_instance {inst.name}: cloud block"))
        if inst.auth_key_file is not None:
            found.append((inst.auth_key_file, f"vrrp_instance {inst.name}: auth_key_file"))
    for script in cfg.scripts.values():
        if script.haproxy is not None:
            found.append((script.loc, f"vrrp_script {script.name}: haproxy_socket (cloudvip's native check)"))
    return found


def calls_cloudvip_notify(cfg: Config) -> bool:
    """Is this keepalived.conf meant for a stock keepalived next to a companion?"""
    return any(Path(cmd.argv[0]).name == "cloudvip" and "notify" in cmd.argv[1:] for cmd in cfg.notify_commands())


def stock_keepalived_warnings(cfg: Config, diags: Diagnostics) -> None:
    for loc, what in cloudvip_only_keywords(cfg):
        diags.warning(loc, f"{what} is cloudvip-only: stock keepalived rejects it (`keepalived -t` fails) or "
                           "drops what follows; put cloud blocks in the companion file instead")


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    loc: Location
    cloud: CloudBlock


def _entries(nodes: list[Node], parser: Parser, diags: Diagnostics) -> tuple[str | None, Location | None,
                                                                                list[_Entry]]:
    kpath: str | None = None
    kloc: Location | None = None
    entries: list[_Entry] = []
    for node in nodes:
        if node.keyword == MARKER:
            if kpath is not None:
                diags.error(node.loc, f"{MARKER} given twice (first at {kloc})", "one keepalived.conf per companion")
            kpath, kloc = parser.v.text(node, "the path of keepalived.conf"), node.loc
        elif node.keyword == "vrrp_instance":
            name = parser.v.text(node, "the name of an instance of keepalived.conf")
            cloud: CloudBlock | None = None
            for child in parser.v.block(node):
                if child.keyword != "cloud":
                    diags.error(child.loc, f"'{child.keyword}' does not belong in the companion file",
                                "only a cloud PROVIDER { ... } block; keepalived's settings stay in keepalived.conf")
                elif cloud is not None:
                    diags.error(child.loc, "only one cloud block per instance", "a single cloud PROVIDER { }")
                else:
                    cloud = parser.cloud(child)
            if name is not None and cloud is None and not diags.errors:
                diags.error(node.loc, f"vrrp_instance {name} has no cloud block", "cloud PROVIDER { ... }")
            if name is not None and cloud is not None:
                if any(e.name == name for e in entries):
                    diags.error(node.loc, f"vrrp_instance {name} is named twice", "one block per instance")
                entries.append(_Entry(name, node.loc, cloud))
        else:
            diags.error(node.loc, f"unknown keyword '{node.keyword}' in a companion file",
                        f"{MARKER} PATH and vrrp_instance NAME {{ cloud PROVIDER {{ ... }} }}")
    return kpath, kloc, entries


def load_companion(path: Path, nodes: list[Node], diags: Diagnostics, files: tuple[Path, ...],
                   load_keepalived: Callable[[Path], Config]) -> Config:
    """keepalived.conf with the companion file's cloud blocks; ConfigError with FILE:LINE of
    whichever file is wrong."""
    parser = Parser(diags)
    kpath_text, kloc, entries = _entries(nodes, parser, diags)
    if kpath_text is None or kloc is None:
        diags.error(Location(str(path), 1), f"no {MARKER}", f"{MARKER} /etc/keepalived/keepalived.conf")
        raise ConfigError(diags.items)
    kpath = Path(kpath_text)
    if not kpath.is_absolute():
        kpath = Path(kloc.file).parent / kpath
    if not kpath.is_file():
        diags.error(kloc, f"{MARKER} {kpath}: no such file", "the path of keepalived.conf")
    if not entries and not diags.errors:
        diags.error(Location(str(path), 1), "no vrrp_instance with a cloud block: nothing for a companion to do",
                    "vrrp_instance NAME { cloud PROVIDER { ... } }")
    if diags.errors:
        raise ConfigError(sorted(diags.items, key=lambda d: d.loc))
    try:
        kcfg = load_keepalived(kpath)
    except ConfigError as exc:
        raise ConfigError(sorted(list(diags.items) + list(exc.diagnostics), key=lambda d: d.loc)) from None
    diags.items.extend(kcfg.diagnostics)
    if not calls_cloudvip_notify(kcfg):  # else load() has warned already
        stock_keepalived_warnings(kcfg, diags)
    by_name = {inst.name: inst for inst in kcfg.instances}
    merged: dict[str, VrrpInstance] = {}
    for entry in entries:
        inst = by_name.get(entry.name)
        if inst is None:
            diags.error(entry.loc, f"vrrp_instance {entry.name} is not in {kpath}",
                        f"one of its instances: {', '.join(by_name) or 'none'}")
            continue
        if not inst.vips:
            diags.error(entry.loc, f"vrrp_instance {entry.name} of {kpath} has no virtual_ipaddress: keepalived "
                                   "carries no VIP for the cloud to follow", f"a virtual_ipaddress at {inst.loc}")
            continue
        if kcfg.global_defs.notify_fifo is None and inst.notify.master_rx_lower_pri is None:
            diags.warning(inst.loc, f"vrrp_instance {inst.name} has no notify_master_rx_lower_pri (and there is no "
                                    "notify_fifo): after a partition the VIP may stay with the node that steps down "
                                    "until the split-brain hold ends; add notify_master_rx_lower_pri "
                                    f'"/usr/local/bin/cloudvip notify master_rx_lower_pri {inst.name}"')
        merged[inst.name] = replace(inst, cloud=entry.cloud)
    if diags.errors:
        raise ConfigError(sorted(diags.items, key=lambda d: d.loc))
    instances = tuple(merged.get(inst.name, replace(inst, cloud=None)) for inst in kcfg.instances)
    return replace(kcfg, path=path, files=files + kcfg.files, instances=instances,
                   diagnostics=tuple(diags.items), keepalived_conf=kpath)


@dataclass(frozen=True, slots=True)
class KeepalivedVerdict:
    ran: bool  # False: no keepalived installed
    ok: bool = True
    output: str = ""
    #: keepalived 2.2's `-t` kills itself (SIGTERM) when it checks a script as another user
    #: (script_user, or keepalived_script when that user exists): no verdict on the file (fixed in 2.4)
    inconclusive: bool = False


def keepalived_accepts(conf: Path, keepalived: str = "keepalived", wrapper: Sequence[str] = ()) -> KeepalivedVerdict:
    """`keepalived -t -f CONF`, as a config-management tool validates the file before installing it.
    `wrapper`: where to run it (e.g. `ip netns exec NS`: keepalived checks that the interfaces exist)."""
    exe = shutil.which(keepalived)
    if exe is None:
        return KeepalivedVerdict(ran=False)
    try:
        done = subprocess.run([*wrapper, exe, "-t", "-l", "-f", str(conf)], capture_output=True, text=True,
                              timeout=KEEPALIVED_T_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return KeepalivedVerdict(ran=True, ok=False, output=str(exc))
    output = (done.stdout + done.stderr).strip()
    if done.returncode == -signal.SIGTERM:
        return KeepalivedVerdict(ran=True, ok=False, inconclusive=True, output=(
            f"{exe} -t killed itself with SIGTERM while checking the scripts as their (non-root) user: a bug of "
            "keepalived 2.2's test mode, fixed in 2.4; no verdict on the file"))
    return KeepalivedVerdict(ran=True, ok=done.returncode == 0, output=f"{output}\n(exit {done.returncode})".strip())
