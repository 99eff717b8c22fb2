"""keepalived.conf statements -> typed configuration.

Every keyword keepalived's VRRP part knows is either used or, where cloudvip
has no equivalent, accepted with a warning; unknown keywords are warnings with
file:line, as keepalived treats them. Invalid values are errors.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address
from typing import Any

from ..auth_hmac import Mode, derived_window
from ..packet import AuthType
from .diagnostics import Diagnostics, Location
from .model import (Authentication, CloudBlock, CloudEntry, GlobalDefs, HaproxyProbe, Notifiers, ScriptCommand,
                    TrackProcess,
                    SyncGroup, TrackFile, TrackRef, UnicastPeer, VirtualAddress, VrrpInstance,
                    VrrpScript)
from . import not_implemented as not_implemented_table
from .auth_hmac_block import parse_auth_hmac, parse_key_file
from .syntax import Node
from .values import Values

MAX_WEIGHT = 253
SCOPES = ("host", "link", "global", "site", "nowhere")

#: keepalived's checker (LVS) sections: keepalived runs them in its checker process, not in VRRP
LVS_TOP = {"virtual_server", "virtual_server_group"}


def _unknown(diags: Diagnostics, node: Node, where: str) -> None:
    diags.warning(node.loc, f"unknown keyword '{node.keyword}' in {where}, ignored")


def warn_not_implemented(diags: Diagnostics, node: Node, table: dict[str, str]) -> None:
    """A keepalived keyword cloudvip does not act on: said by name, with what it is."""
    diags.warning(node.loc, f"{node.keyword} is not implemented by cloudvip ({table[node.keyword]}); ignored")


class Parser:
    def __init__(self, diags: Diagnostics) -> None:
        self.diags = diags
        self.v = Values(diags)

    # ---------- global_defs ----------
    def global_defs(self, nodes: list[Node], into: dict[str, Any]) -> None:
        v = self.v
        ints: dict[str, tuple[str, int, int]] = {
            "vrrp_garp_master_delay": ("garp_master_delay", 0, 255),
            "vrrp_garp_master_repeat": ("garp_master_repeat", 1, 255),
            "vrrp_garp_master_refresh": ("garp_master_refresh", 0, 86400),
            "vrrp_garp_master_refresh_repeat": ("garp_master_refresh_repeat", 1, 255),
            "vrrp_version": ("vrrp_version", 2, 3),
        }
        flags = {"enable_script_security": "enable_script_security",
                 "vrrp_check_unicast_src": "check_unicast_src",
                 "vrrp_skip_check_adv_addr": "skip_check_adv_addr", "vrrp_strict": "strict"}
        for node in nodes:
            k = node.keyword
            if k in ints:
                field, lo, hi = ints[k]
                if (val := v.integer(node, lo, hi)) is not None:
                    into[field] = val
            elif k in flags:
                into[flags[k]] = v.flag(node)
            elif k == "router_id":
                into["router_id"] = v.text(node, "a router name")
            elif k == "script_user":
                if (user := v._arg(node, "USER [GROUP]")) is not None:
                    into["script_user"] = user
                    into["script_group"] = node.args[1].text if len(node.args) > 1 else None
            elif k in ("notify_fifo", "vrrp_notify_fifo"):
                into["notify_fifo"] = v._arg(node, "a FIFO path [USER [GROUP]]")
                into["notify_fifo_user"] = node.args[1].text if len(node.args) > 1 else None
                into["notify_fifo_group"] = node.args[2].text if len(node.args) > 2 else None
            elif k in ("vrrp_startup_delay", "vrrp_delay_after_boot"):
                if (seconds := v.number(node, 0.001, 4294967.295)) is not None:
                    into["startup_delay" if k == "vrrp_startup_delay" else "delay_after_boot"] = seconds
            elif k == "vrrp_lower_prio_no_advert":
                if (flag := v.on_off(node)) is not None:
                    into["lower_prio_no_advert"] = flag
            elif k in ("notify_fifo_script", "vrrp_notify_fifo_script"):
                into["notify_fifo_script"] = v.notify_command(node)
            elif k in not_implemented_table.GLOBAL:
                warn_not_implemented(self.diags, node, not_implemented_table.GLOBAL)
            else:
                _unknown(self.diags, node, "global_defs")

    # ---------- vrrp_script ----------
    def vrrp_script(self, node: Node) -> VrrpScript | None:
        v = self.v
        name = v.text(node, "a script name")
        fields: dict[str, Any] = {}
        script: ScriptCommand | None = None
        haproxy: dict[str, Any] = {}
        for child in v.block(node):
            k = child.keyword
            if k == "script":
                script = v.command(child)
            elif k == "haproxy_socket":
                haproxy["socket"] = v.text(child, "the path of HAProxy's stats socket")
            elif k in ("haproxy_backend", "haproxy_frontend"):
                haproxy[k.split("_")[1]] = v.text(child, f"a {k.split('_')[1]} name")
            elif k == "haproxy_min_up":
                haproxy["min_up"] = v.integer(child, 1, 100_000)
            elif k == "interval":
                fields["interval"] = v.number(child, 0.001, 86400)
            elif k == "timeout":
                fields["timeout"] = v.number(child, 0.001, 86400)
            elif k == "weight":
                fields["weight"] = v.integer(child, -MAX_WEIGHT, MAX_WEIGHT)
                fields["weight_reverse"] = self._reverse(child, 1)
            elif k in ("rise", "fall"):
                fields[k] = v.integer(child, 1, 10_000)
            elif k == "user":
                if (user := v._arg(child, "USER [GROUP]")) is not None:
                    fields["user"] = user
                    fields["group"] = child.args[1].text if len(child.args) > 1 else None
            elif k == "init_fail":
                fields["init_fail"] = v.flag(child)
            else:
                _unknown(self.diags, child, f"vrrp_script {name}")
        if name is None:
            return None
        probe = None
        if haproxy:
            if haproxy.get("socket") is None:
                self.diags.error(node.loc, f"vrrp_script {name} has haproxy_* settings but no haproxy_socket",
                                 "haproxy_socket /run/haproxy/admin.sock")
                return None
            probe = HaproxyProbe(**{k: x for k, x in haproxy.items() if x is not None})
        if script is None and probe is None:
            self.diags.warning(node.loc, f"vrrp_script {name} has no script: removed, as keepalived does (\"No "
                                         f"script set for vrrp_script {name} - removing\"); tracking it is ignored")
            return None
        if script is not None and probe is not None:
            self.diags.error(node.loc, f"vrrp_script {name} has both a script and haproxy_socket",
                             'script "COMMAND" or haproxy_socket PATH, not both')
            return None
        return VrrpScript(name, node.loc, script, probe, **{k: x for k, x in fields.items() if x is not None})

    # ---------- track_file (top level) ----------
    def track_file(self, node: Node) -> TrackFile | None:
        v = self.v
        name = v.text(node, "a track file name")
        fields: dict[str, Any] = {}
        path: str | None = None
        for child in v.block(node):
            k = child.keyword
            if k == "file":
                path = v.text(child, "a file path")
            elif k == "weight":
                fields["weight"], fields["reverse"] = self._weight(child)
            elif k == "init_file":
                words = child.words
                fields["overwrite"] = "overwrite" in words
                values = [w for w in words if w != "overwrite"]
                fields["init_file"] = v.integer(child, -2**31, 2**31 - 1) if values else 0
            else:
                _unknown(self.diags, child, f"track_file {name}")
        if name is None:
            return None
        if path is None:
            self.diags.error(node.loc, f"track_file {name} has no file", "file PATH")
            return None
        return TrackFile(name, node.loc, path, **{k: x for k, x in fields.items() if x is not None})

    # ---------- vrrp_track_process (top level) ----------
    def track_process(self, node: Node) -> TrackProcess | None:
        """As keepalived reads it: parameters after the process name, or param_match, or
        full_command, match /proc/PID/cmdline; otherwise the process name (comm)."""
        v = self.v
        name = v.text(node, "a track process name")
        fields: dict[str, Any] = {}
        process: str | None = None
        for child in v.block(node):
            k = child.keyword
            if k == "process":
                if not child.args:
                    self.diags.error(child.loc, "process needs a name", "process NAME [PARAM ...]")
                    continue
                process = child.args[0].text
                if len(child.args) > 1:
                    fields["params"] = tuple(a.text for a in child.args[1:])
                    fields["full_command"] = True
                    fields.setdefault("param_match", "exact")
            elif k == "param_match":
                how = child.words[0] if child.words else "exact"
                if how not in ("initial", "partial", "exact") or (how == "exact" and child.words):
                    self.diags.warning(child.loc, f"Invalid param_match type {how} - ignoring (as keepalived)")
                    continue
                fields["param_match"], fields["full_command"] = how, True
            elif k == "full_command":
                fields["full_command"] = v.flag(child)
            elif k == "weight":
                fields["weight"], fields["reverse"] = self._weight(child)
            elif k == "quorum":
                fields["quorum"] = v.integer(child, 1, 65535)
            elif k == "quorum_max":
                fields["quorum_max"] = v.integer(child, 0, 65535)
            elif k in ("fork_delay", "terminate_delay"):
                fields[k] = v.number(child, 0, 3600)
            elif k == "delay":
                fields["fork_delay"] = fields["terminate_delay"] = v.number(child, 0, 3600)
            else:
                _unknown(self.diags, child, f"vrrp_track_process {name}")
        if name is None:
            return None
        if process is None:
            self.diags.warning(node.loc, f"vrrp_track_process {name} has no process: removed, as keepalived "
                                         "removes it; tracking it is ignored")
            return None
        spec = TrackProcess(name, node.loc, process, **{k: x for k, x in fields.items() if x is not None})
        if spec.quorum_max is not None and spec.quorum_max < spec.quorum:
            self.diags.warning(node.loc, f"vrrp_track_process {name}: quorum_max {spec.quorum_max} is below quorum "
                                         f"{spec.quorum}: it can never be up")
        if not spec.full_command and len(process) > 15:
            self.diags.warning(node.loc, f"vrrp_track_process {name}: a process name (comm) has at most 15 "
                                         f"characters: {process!r} never matches without full_command")
        return spec

    def _weight(self, node: Node) -> tuple[int | None, bool]:
        """`weight N [reverse]` of a track_file or vrrp_track_process (-254..254, as keepalived)."""
        return self.v.integer(node, -MAX_WEIGHT - 1, MAX_WEIGHT + 1), self._reverse(node, 1)

    def _reverse(self, node: Node, index: int) -> bool:
        extra = node.words[index:]
        if extra and extra != ["reverse"]:
            self.diags.error(node.loc, f"unexpected {' '.join(extra)!r} after {node.keyword}",
                             "nothing or 'reverse'")
        return extra == ["reverse"]

    # ---------- shared instance / group parts ----------
    def track_refs(self, node: Node, kind: str) -> tuple[TrackRef, ...]:
        refs: list[TrackRef] = []
        for child in self.v.block(node):
            weight: int | None = None
            reverse = False
            words = child.words
            if kind == "track_interface" and self.v.ifname(child, child.keyword) is None:
                continue
            if words:
                if words[0] != "weight" or len(words) < 2:
                    self.diags.error(child.loc, f"unexpected {' '.join(words)!r} after {child.keyword}",
                                     "NAME [weight N [reverse]]")
                    continue
                weight = self.v.integer(child, -MAX_WEIGHT - (kind == "track_file"),
                                        MAX_WEIGHT + (kind == "track_file"), 1)
                if weight is None:
                    continue
                reverse = self._reverse(child, 2)
            refs.append(TrackRef(child.keyword, child.loc, weight, reverse))
        return tuple(refs)

    NOTIFY_KEYS = {"notify_master": "master", "notify_backup": "backup", "notify_fault": "fault",
                   "notify_stop": "stop", "notify": "generic"}

    def _common(self, node: Node, fields: dict[str, Any], notifiers: dict[str, Any]) -> bool:
        """Keywords instances and sync groups share; True when handled."""
        k = node.keyword
        if k in self.NOTIFY_KEYS:
            notifiers[self.NOTIFY_KEYS[k]] = self.v.notify_command(node)
        elif k in ("track_script", "track_interface", "track_file"):
            fields[k + "s"] = fields.get(k + "s", ()) + self.track_refs(node, k)
        elif k == "track_process":
            fields["track_processes"] = fields.get("track_processes", ()) + self.track_refs(node, k)
        else:
            return False
        return True

    # ---------- vrrp_instance ----------
    def vrrp_instance(self, node: Node, gdefs: GlobalDefs) -> VrrpInstance | None:
        v = self.v
        name = v.text(node, "an instance name")
        where = f"vrrp_instance {name}"
        fields: dict[str, Any] = {
            "version": gdefs.vrrp_version, "garp_master_delay": gdefs.garp_master_delay,
            "garp_master_repeat": gdefs.garp_master_repeat,
            "garp_master_refresh": gdefs.garp_master_refresh,
            "garp_master_refresh_repeat": gdefs.garp_master_refresh_repeat,
            "skip_check_adv_addr": gdefs.skip_check_adv_addr, "strict": gdefs.strict,
        }
        notifiers: dict[str, Any] = {}
        seen: dict[str, Location] = {}
        simple_ints: dict[str, tuple[int, int]] = {
            "virtual_router_id": (1, 255), "unicast_ttl": (1, 255),
            "garp_master_delay": (0, 255), "garp_master_repeat": (1, 255),
            "garp_master_refresh": (0, 86400), "garp_master_refresh_repeat": (1, 255),
        }
        for child in v.block(node):
            k = child.keyword
            if k in seen and k not in ("virtual_ipaddress", "virtual_ipaddress_excluded", "track_script",
                                       "track_interface", "track_file", "track_process", "unicast_peer"):
                self.diags.warning(child.loc, f"{k} given again (first at {seen[k]}); the last one counts")
            seen.setdefault(k, child.loc)
            if self._common(child, fields, notifiers):
                continue
            if k == "priority":
                fields["priority"] = self._priority(child)
            elif k == "notify_master_rx_lower_pri":
                notifiers["master_rx_lower_pri"] = v.notify_command(child)
            elif k in simple_ints:
                lo, hi = simple_ints[k]
                fields["vrid" if k == "virtual_router_id" else k] = v.integer(child, lo, hi)
            elif k == "state":
                fields["state_hint"] = v.keyword_value(child, ("MASTER", "BACKUP"), "BACKUP", "BACKUP")
            elif k == "interface":
                fields["interface"] = v.ifname(child)
            elif k == "advert_int":
                fields["advert_int"] = v.number(child, 0.01, 255)
            elif k == "version":
                fields["version"] = v.integer(child, 2, 3)
            elif k == "authentication":
                fields["auth"] = self.authentication(child, where)
            elif k in ("unicast_src_ip", "mcast_src_ip"):
                fields["unicast_src_ip"] = v.address(child)
            elif k == "unicast_peer":
                fields["unicast_peers"] = fields.get("unicast_peers", ()) + self.unicast_peers(child)
            elif k == "nopreempt":
                fields["nopreempt"] = v.flag(child)
            elif k == "preempt":
                fields["nopreempt"] = not v.flag(child)
            elif k == "preempt_delay":
                fields["preempt_delay"] = v.number(child, 0, 1000)
            elif k in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
                key = "vips" if k == "virtual_ipaddress" else "vips_excluded"
                fields[key] = fields.get(key, ()) + self.virtual_addresses(child)
            elif k == "dont_track_primary":
                fields["dont_track_primary"] = v.flag(child)
            elif k == "lower_prio_no_advert":
                if (flag := v.on_off(child)) is not None:
                    fields["lower_prio_no_advert"] = flag
            elif k == "strict_mode":
                if (strict := v.on_off(child)) is not None:
                    fields["strict"] = strict
            elif k == "no_virtual_ipaddress":
                fields["no_virtual_ipaddress"] = v.flag(child)
            elif k == "check_unicast_src":
                v.flag(child)  # cloudvip always drops unicast adverts from a source that is not a peer
            elif k in ("skip_check_adv_addr",):
                fields["skip_check_adv_addr"] = v.flag(child)
            elif k == "auth_hmac":
                fields["auth_hmac"] = parse_auth_hmac(child, v, self.diags)
            elif k == "auth_key_file":
                fields["auth_hmac"], fields["auth_key_file"] = parse_key_file(child, v, self.diags), child.loc
            elif k == "cloud":
                if "cloud" in fields:
                    self.diags.error(child.loc, "only one cloud block per instance", "a single cloud PROVIDER { }")
                fields["cloud"] = self.cloud(child)
            elif k in not_implemented_table.INSTANCE:
                warn_not_implemented(self.diags, child, not_implemented_table.INSTANCE)
            else:
                _unknown(self.diags, child, where)
        if name is None:
            return None
        missing = [kw for kw, f in (("interface", "interface"), ("virtual_router_id", "vrid")) if f not in fields]
        for kw in missing:
            self.diags.error(node.loc, f"{where} has no {kw}", f"{kw} inside the block")
        clean = {k: x for k, x in fields.items() if x is not None}
        if missing or "interface" not in clean or "vrid" not in clean:
            return None
        if "priority" not in clean and clean.get("state_hint") == "MASTER":
            self.diags.warning(node.loc, f"{where}: state MASTER without a priority: keepalived makes it the address "
                                         "owner (priority 255), and so does cloudvip")
            clean["priority"] = 255
        notify = Notifiers(**{k: x for k, x in notifiers.items() if x is not None})
        inst = VrrpInstance(name, node.loc, notify=notify, **clean)
        return self._settle_instance(inst, gdefs)

    def _priority(self, node: Node) -> int | None:
        """keepalived: "Priority not valid! must be between 1 & 255. Using default 100"."""
        raw = node.words[0] if node.words else ""
        if raw.isdigit() and 1 <= int(raw) <= 255:
            return int(raw)
        self.diags.warning(node.loc, f"priority {raw!r} is not 1..255: 100, as keepalived uses (\"Priority not "
                                     "valid! ... Using default 100\")")
        return 100

    def _settle_instance(self, inst: VrrpInstance, gdefs: GlobalDefs) -> VrrpInstance:
        """keepalived's own adjustments, each with the warning it logs."""
        warn = self.diags.warning
        where = f"vrrp_instance {inst.name}"
        mixed = [a for a in inst.vips if a.address.version != inst.family]
        if mixed:
            warn(mixed[0].loc, f"{where}: {len(mixed)} address(es) of the other family moved to "
                               "virtual_ipaddress_excluded (one VRRP instance runs over one family)")
            inst = replace(inst, vips=tuple(a for a in inst.vips if a not in mixed),
                           vips_excluded=inst.vips_excluded + tuple(mixed))
        if inst.family == 6 and inst.version == 2:
            warn(inst.loc, f"{where}: VRRPv2 has no IPv6; using version 3")
            inst = replace(inst, version=3)
        if inst.version == 2 and inst.advert_int != int(inst.advert_int):
            rounded = max(1, round(inst.advert_int))
            warn(inst.loc, f"{where}: VRRPv2 carries whole seconds; advert_int {inst.advert_int:g} "
                           f"rounded to {rounded}")
            inst = replace(inst, advert_int=float(rounded))
        if inst.version == 3 and inst.advert_interval_cs > 4095:
            self.diags.error(inst.loc, f"{where}: advert_int {inst.advert_int:g} too long for VRRPv3",
                             "at most 40.95 s")
        if inst.version == 3 and inst.auth is not None:
            warn(inst.loc, f"{where}: VRRPv3 has no authentication; authentication block ignored")
            inst = replace(inst, auth=None)
        if inst.priority == 255 and inst.nopreempt:
            warn(inst.loc, f"{where}: nopreempt is incompatible with priority 255 - resetting nopreempt")
            inst = replace(inst, nopreempt=False)
        if inst.strict:
            inst = self._strict(inst, where)
        if inst.auth_hmac is not None:
            inst = self._auth_hmac(inst, where)
        if inst.lower_prio_no_advert is None:
            inst = replace(inst, lower_prio_no_advert=inst.strict or gdefs.lower_prio_no_advert)
        if inst.state_hint == "MASTER":
            if inst.nopreempt:
                warn(inst.loc, f"{where}: nopreempt will not work with initial state MASTER - clearing "
                               "(use state BACKUP on every node)")
                inst = replace(inst, nopreempt=False)
            if inst.preempt_delay:
                warn(inst.loc, f"{where}: preempt_delay will not work with initial state MASTER - clearing")
                inst = replace(inst, preempt_delay=0.0)
        if inst.nopreempt and inst.preempt_delay:
            warn(inst.loc, f"{where}: preempt_delay is incompatible with nopreempt - resetting")
            inst = replace(inst, preempt_delay=0.0)
        return inst

    def _auth_hmac(self, inst: VrrpInstance, where: str) -> VrrpInstance:
        """keepalived's rules for auth_hmac beside the rest of the instance."""
        ah = inst.auth_hmac
        assert ah is not None
        if inst.auth is not None:
            self.diags.warning(inst.loc, f"{where}: auth_hmac cannot be combined with authentication: the PASS "
                                         "password is dropped, as keepalived drops it")
            inst = replace(inst, auth=None)
        if inst.strict and ah.mode is not Mode.ENFORCE:
            self.diags.warning(inst.loc, f"{where}: strict mode requires auth_hmac mode enforce: enforce, as "
                                         "keepalived sets it")
            ah = replace(ah, mode=Mode.ENFORCE)
        if ah.time_window == 0:
            ah = replace(ah, time_window=derived_window(inst.advert_int))
        return replace(inst, auth_hmac=ah)

    def _strict(self, inst: VrrpInstance, where: str) -> VrrpInstance:
        """keepalived's strict mode, as keepalived applies it (with its messages)."""
        warn = self.diags.warning
        owner = inst.priority == 255
        if inst.state_hint is not None and (inst.state_hint == "MASTER") != owner:
            warn(inst.loc, f"{where}: strict mode: state MASTER must match being address owner (priority 255): "
                           f"state {'MASTER' if owner else 'BACKUP'}, as keepalived sets it")
            inst = replace(inst, state_hint="MASTER" if owner else "BACKUP")
        if inst.auth is not None:
            warn(inst.loc, f"{where}: strict mode does not support authentication: ignored, as keepalived "
                           "ignores it (\"Strict mode does not support authentication. Ignoring.\")")
            inst = replace(inst, auth=None)
        if inst.unicast_peers:
            warn(inst.loc, f"{where}: strict mode with unicast peers: keepalived 2.4 drops this instance "
                           "(\"Unicast peers are not supported in strict mode\"), 2.2 runs it; cloudvip runs it")
        if not owner:
            warn(inst.loc, f"{where}: strict mode: keepalived also blocks traffic to the VIPs of a master that is "
                           "not the address owner (no accept mode, with iptables/nftables rules) and sends no "
                           "gratuitous ARP in answer to a lower priority; cloudvip does neither (its VIPs answer, "
                           "and it re-announces them)")
        return inst

    def authentication(self, node: Node, where: str) -> Authentication | None:
        """What keepalived makes of the block: PASS with a password; AH (which cloudvip does not
        speak: an error on its line); anything else, or a half block, no authentication."""
        auth_type: str | None = None
        password: str | None = None
        type_node: Node | None = None
        for child in self.v.block(node):
            if child.keyword == "auth_type":
                type_node = child
                auth_type = self.v.keyword_value(child, ("PASS", "AH"), None, "no authentication")
                if auth_type == "AH":
                    self.diags.error(child.loc, "auth_type AH: cloudvip does not speak IPsec AH (keepalived 2.2 "
                                                "does; RFC 3768 removed it)", "auth_type PASS")
            elif child.keyword == "auth_pass":
                password = self.v.text(child, "a password")
                if password is not None and len(password.encode()) > 8:
                    self.diags.warning(child.loc, f"auth_pass is {len(password.encode())} characters; "
                                                  f"keepalived and cloudvip use only the first 8 "
                                                  f"({password[:8]!r})")
            else:
                _unknown(self.diags, child, f"authentication of {where}")
        if auth_type != "PASS":
            if type_node is None and password is not None:
                self.diags.warning(node.loc, "authentication has auth_pass but no auth_type: keepalived runs "
                                             "without authentication, and so does cloudvip")
            return None
        if password is None:
            self.diags.warning(node.loc, "auth_type PASS without auth_pass: keepalived ignores the "
                                         "authentication (\"no password given\"), and so does cloudvip")
            return None
        return Authentication(AuthType.PASS, password.encode()[:8])

    def unicast_peers(self, node: Node) -> tuple[UnicastPeer, ...]:
        peers: list[UnicastPeer] = []
        for child in self.v.block(node):
            addr = self.v.address(child, child.keyword)
            opts: dict[str, int] = {}
            words = child.words
            if len(words) % 2:
                self.diags.error(child.loc, f"unexpected {' '.join(words)!r} after peer {child.keyword}",
                                 "[min_ttl N] [max_ttl N]")
                continue
            for i in range(0, len(words), 2):
                if words[i] not in ("min_ttl", "max_ttl"):
                    self.diags.error(child.loc, f"unknown peer option {words[i]!r}", "min_ttl or max_ttl")
                    continue
                if (val := self.v.integer(child, 0, 255, i + 1)) is not None:
                    opts[words[i]] = val
            if addr is not None:
                peer = UnicastPeer(addr, child.loc, **opts)
                if peer.min_ttl > peer.max_ttl:
                    self.diags.error(child.loc, f"min_ttl {peer.min_ttl} above max_ttl {peer.max_ttl}",
                                     "min_ttl <= max_ttl")
                peers.append(peer)
        return tuple(peers)

    def virtual_addresses(self, node: Node) -> tuple[VirtualAddress, ...]:
        out: list[VirtualAddress] = []
        for child in self.v.block(node):
            vip = self.virtual_address(child)
            if vip is not None:
                out.append(vip)
        return tuple(out)

    def virtual_address(self, node: Node) -> VirtualAddress | None:
        """ADDR[/PREFIX] [brd ADDR] [dev IF] [scope SCOPE] [label LABEL] [no_track]"""
        v = self.v
        raw = node.keyword
        addr, slash, prefix = raw.partition("/")
        try:
            longest = ip_address(addr).max_prefixlen
        except ValueError:
            v.diags.warning(node.loc, f"{raw!r} is not an address: skipped, as keepalived skips it "
                                      f"(\"VRRP parsed invalid IP {raw}. skipping IP...\")")
            return None
        if slash and not (prefix.isdigit() and int(prefix) <= longest):
            v.diags.warning(node.loc, f"prefix length {prefix!r} of {addr} is not 0..{longest}: /{longest}, as "
                                      "keepalived uses")
            raw = f"{addr}/{longest}"
        iface = v.interface_address(node, raw)
        opts: dict[str, Any] = {}
        words = node.words
        i = 0
        ok = iface is not None
        while i < len(words):
            w = words[i]
            if w == "no_track":
                opts["no_track"] = True
                i += 1
                continue
            if w not in ("brd", "broadcast", "dev", "scope", "label"):
                v.diags.error(node.loc, f"unknown virtual_ipaddress option {w!r}",
                              "brd, dev, scope, label or no_track")
                return None
            if i + 1 >= len(words):
                v.diags.error(node.loc, f"{w} needs a value", f"{w} VALUE")
                return None
            val = words[i + 1]
            if w in ("brd", "broadcast"):
                opts["brd"] = v.ipv4(node, val) if val not in ("+", "-") else None
            elif w == "dev":
                opts["dev"] = v.ifname(node, val)
                ok = ok and opts["dev"] is not None
            elif w == "scope":
                if val not in SCOPES and not (val.isdigit() and int(val) <= 255):
                    v.diags.error(node.loc, f"scope {val!r} is not valid", "host, link, global, site, "
                                                                          "nowhere or 0..255")
                    ok = False
                opts["scope"] = val
            else:
                if len(val) > 15:
                    v.diags.error(node.loc, f"label {val!r} is longer than 15 characters",
                                  "IFNAME:TAG of at most 15 characters")
                    ok = False
                opts["label"] = val
            i += 2
        if not ok or iface is None:
            return None
        if "brd" in opts and iface.version != 4:
            v.diags.error(node.loc, "brd is for IPv4 addresses only", "no brd on an IPv6 address")
            return None
        return VirtualAddress(iface, node.loc, **{k: x for k, x in opts.items() if x is not None})

    def cloud(self, node: Node) -> CloudBlock | None:
        if not node.args:
            self.diags.error(node.loc, "cloud needs a provider name", "cloud aws { ... } or cloud hetzner { ... }")
            return None
        if len(node.args) > 1:
            self.diags.warning(node.loc, f"cloud: extra words ignored: {' '.join(node.words[1:])!r}")
        return CloudBlock(node.args[0].text, node.loc, tuple(self._cloud_entries(self.v.block(node))))

    def _cloud_entries(self, nodes: list[Node]) -> list[CloudEntry]:
        return [CloudEntry(n.keyword, tuple(n.words), n.loc,
                           None if n.children is None else tuple(self._cloud_entries(n.children)))
                for n in nodes]

    # ---------- vrrp_sync_group ----------
    def sync_group(self, node: Node) -> SyncGroup | None:
        v = self.v
        name = v.text(node, "a group name")
        fields: dict[str, Any] = {}
        notifiers: dict[str, Any] = {}
        members: list[str] = []
        for child in v.block(node):
            if self._common(child, fields, notifiers):
                continue
            if child.keyword == "group":
                for m in v.block(child):
                    if m.args:
                        self.diags.error(m.loc, f"unexpected words after {m.keyword}", "one instance name per line")
                    members.append(m.keyword)
            elif child.keyword in not_implemented_table.SYNC_GROUP:
                warn_not_implemented(self.diags, child, not_implemented_table.SYNC_GROUP)
            else:
                _unknown(self.diags, child, f"vrrp_sync_group {name}")
        if name is None:
            return None
        notify = Notifiers(**{k: x for k, x in notifiers.items() if x is not None})
        return SyncGroup(name, node.loc, tuple(members), notify, **fields)


def build_global_defs(parser: Parser, nodes: list[Node]) -> GlobalDefs:
    fields: dict[str, Any] = {}
    for node in nodes:
        if node.keyword == "global_defs":
            parser.global_defs(parser.v.block(node), fields)
    return GlobalDefs(**{k: x for k, x in fields.items() if x is not None})

