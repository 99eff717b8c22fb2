"""keepalived.conf, read as keepalived reads it, into typed dataclasses.

    cfg = load(Path("/etc/keepalived/keepalived.conf"))   # raises ConfigError

Warnings (unknown keywords, truncated passwords, ...) are in `cfg.diagnostics`.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any, TypeVar

from .checks import check
from .companion_file import calls_cloudvip_notify, is_companion_file, load_companion, stock_keepalived_warnings
from .diagnostics import ConfigError, Diagnostic, Diagnostics, Location, Severity
from .model import (Authentication, CloudBlock, CloudEntry, Config, GlobalDefs, Notifiers,
                    ScriptCommand, SyncGroup, TrackFile, TrackProcess, TrackRef, UnicastPeer, VirtualAddress,
                    VrrpInstance, VrrpScript)
from ..paths import DEFAULT_PATH
from ..scripts import default_run_as
from . import not_implemented as not_implemented_table
from .parser import LVS_TOP, Parser, build_global_defs, warn_not_implemented
from .syntax import Node, parse_file, parse_text

_T = TypeVar("_T")

__all__ = [
    "Authentication", "CloudBlock", "CloudEntry", "Config", "ConfigError", "DEFAULT_PATH", "Diagnostic",
    "GlobalDefs", "Location", "Notifiers", "ScriptCommand", "Severity", "SyncGroup", "TrackFile",
    "TrackProcess", "TrackRef", "UnicastPeer", "VirtualAddress", "VrrpInstance", "VrrpScript", "load", "loads",
    "settings_key",
]


def settings_key(value: Any) -> Any:
    """A comparable form of a config object without its file:line locations (for reload)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,) + tuple(
            (f.name, settings_key(getattr(value, f.name))) for f in dataclasses.fields(value)
            if not isinstance(getattr(value, f.name), Location))
    if isinstance(value, (tuple, list)):
        return tuple(settings_key(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, settings_key(v)) for k, v in value.items()))
    return value


def default_config_id() -> str:
    """keepalived's default config_id: the host name up to the first dot."""
    return socket.gethostname().split(".")[0]


def load(path: Path | str = DEFAULT_PATH, config_id: str | None = None) -> Config:
    """A keepalived.conf, or a companion file (`keepalived_config PATH` and cloud blocks) together
    with the keepalived.conf it names."""
    path = Path(path)
    diags = Diagnostics()
    nodes, files = parse_file(path, diags, config_id or default_config_id())
    if is_companion_file(nodes):
        return load_companion(path, nodes, diags, tuple(files), lambda kpath: load(kpath, config_id))
    return _build(nodes, diags, path, tuple(files))


def loads(text: str, name: str = "<string>", config_id: str | None = None) -> Config:
    diags = Diagnostics()
    nodes = parse_text(text, diags, name, config_id or default_config_id())
    return _build(nodes, diags, Path(name), ())


def _build(nodes: list[Node], diags: Diagnostics, path: Path, files: tuple[Path, ...]) -> Config:
    parser = Parser(diags)
    gdefs = build_global_defs(parser, nodes)
    scripts: dict[str, VrrpScript] = {}
    track_files: dict[str, TrackFile] = {}
    track_processes: dict[str, TrackProcess] = {}
    instances: list[VrrpInstance] = []
    groups: list[SyncGroup] = []
    for node in nodes:
        k = node.keyword
        if k == "global_defs":
            continue
        if k == "vrrp_script":
            if (script := parser.vrrp_script(node)) is not None:
                _unique(scripts, script.name, script, node, diags, k)
        elif k == "vrrp_track_process":
            if (tp := parser.track_process(node)) is not None:
                _unique(track_processes, tp.name, tp, node, diags, k)
        elif k in ("vrrp_track_file", "track_file"):
            if (tf := parser.track_file(node)) is not None:
                _unique(track_files, tf.name, tf, node, diags, k)
        elif k == "vrrp_instance":
            if (inst := parser.vrrp_instance(node, gdefs)) is not None:
                instances.append(inst)
        elif k == "vrrp_sync_group":
            if (group := parser.sync_group(node)) is not None:
                groups.append(group)
        elif k in LVS_TOP:
            diags.warning(node.loc, f"{k} is keepalived's checker (LVS), not VRRP: nothing for cloudvip; ignored")
        elif k in not_implemented_table.TOP:
            warn_not_implemented(diags, node, not_implemented_table.TOP)
        else:
            diags.warning(node.loc, f"unknown keyword '{k}' at top level, ignored")
    _unrunnable_scripts(gdefs, scripts, diags)
    if not instances and not diags.errors:
        lvs = sorted({n.keyword for n in nodes if n.keyword in LVS_TOP})
        diags.warning(Location(str(path), 1), "no vrrp_instance: nothing for cloudvip to run"
                      + (f" (this file configures LVS only: {', '.join(lvs)}; keepalived's checker runs that)"
                         if lvs else ""))
    cfg = check(Config(path, files, gdefs, scripts, track_files, tuple(instances), tuple(groups),
                       track_processes=track_processes), diags)
    if calls_cloudvip_notify(cfg):  # meant for a stock keepalived next to a companion
        stock_keepalived_warnings(cfg, diags)
    if diags.errors:
        raise ConfigError(sorted(diags.items, key=lambda d: d.loc))
    return dataclasses.replace(cfg, diagnostics=tuple(diags.items))


def _unrunnable_scripts(gdefs: GlobalDefs, scripts: dict[str, VrrpScript], diags: Diagnostics) -> None:
    """keepalived under enable_script_security with no user to run a script as removes the
    script ("Unable to set default user for vrrp script NAME - removing"): so does cloudvip.
    Without it, scripts that would run as root get keepalived's SECURITY VIOLATION warning."""
    by_default = [s for s in scripts.values() if s.script is not None and s.user is None and s.script.user is None]
    default = default_run_as(gdefs.script_user, gdefs.script_group, gdefs.enable_script_security)
    if not gdefs.enable_script_security:
        if by_default and default.user is None:
            diags.warning(by_default[0].loc, "SECURITY VIOLATION - scripts are being executed but script_security "
                                             "not enabled (keepalived's words): they run as root; set "
                                             "enable_script_security and script_user")
        return
    if default.refused:
        for script in by_default:
            diags.warning(script.loc, f"vrrp_script {script.name} removed, as keepalived removes it: {default.refused}")
            del scripts[script.name]


def _unique(table: dict[str, _T], name: str, value: _T, node: Node, diags: Diagnostics,
            kind: str) -> None:
    if name in table:
        diags.error(node.loc, f"{kind} {name} is defined twice", "unique names")
    table[name] = value
