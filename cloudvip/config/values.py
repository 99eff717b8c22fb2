"""Reading typed values out of statements, with file:line errors."""

from __future__ import annotations

import re
import shlex
from ipaddress import IPv4Address, ip_address, ip_interface

from .diagnostics import Diagnostics
from .model import IPAddress, IPInterface, ScriptCommand
from .syntax import Node

_IFNAME = re.compile(r"^[^\s/:]{1,15}$")


class Values:
    """Typed accessors for one statement's arguments; each returns None on error
    after recording it, so parsing goes on and reports every problem at once."""

    def __init__(self, diags: Diagnostics) -> None:
        self.diags = diags

    def _arg(self, node: Node, what: str, index: int = 0) -> str | None:
        if len(node.args) <= index:
            self.diags.error(node.loc, f"{node.keyword} needs a value", what)
            return None
        return node.args[index].text

    def flag(self, node: Node) -> bool:
        if node.args:
            self.diags.warning(node.loc, f"{node.keyword} takes no value; "
                                         f"ignoring {' '.join(node.words)!r}")
        return True

    def on_off(self, node: Node) -> bool | None:
        """A keepalived flag with an optional true/false value (keepalived's check_true_false)."""
        if not node.args:
            return True
        raw = node.args[0].text  # case-sensitive, as keepalived's strcmp
        if raw in ("true", "on", "yes"):
            return True
        if raw in ("false", "off", "no"):
            return False
        self.diags.warning(node.loc, f"{node.keyword} {node.args[0].text!r} is not true or false: ignored, as "
                                     "keepalived ignores it")
        return None

    def text(self, node: Node, what: str = "a value") -> str | None:
        value = self._arg(node, what)
        if value is not None and len(node.args) > 1:
            self.diags.warning(node.loc, f"{node.keyword}: extra words ignored: "
                                         f"{' '.join(node.words[1:])!r}")
        return value

    def integer(self, node: Node, lo: int, hi: int, index: int = 0) -> int | None:
        raw = self._arg(node, f"an integer {lo}..{hi}", index)
        if raw is None:
            return None
        label = " ".join([node.keyword] + node.words[:index][-1:])  # e.g. "eth1 weight"
        try:
            value = int(raw, 10)
        except ValueError:
            self.diags.error(node.loc, f"{label} {raw!r} is not a whole number", f"an integer {lo}..{hi}")
            return None
        if not lo <= value <= hi:
            self.diags.error(node.loc, f"{label} {value} is out of range", f"{lo}..{hi}")
            return None
        return value

    def number(self, node: Node, lo: float, hi: float, unit: str = "s") -> float | None:
        raw = self._arg(node, f"a number {lo:g}..{hi:g} {unit}")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            self.diags.error(node.loc, f"{node.keyword} {raw!r} is not a number",
                             f"a number {lo:g}..{hi:g} {unit}")
            return None
        if not lo <= value <= hi or value != value:
            self.diags.error(node.loc, f"{node.keyword} {raw} is out of range", f"{lo:g}..{hi:g} {unit}")
            return None
        return value

    def keyword_value(self, node: Node, options: tuple[str, ...], fallback: str | None,
                      fallback_text: str) -> str | None:
        """A value keepalived matches exactly (case-sensitive, as written): anything else is
        read as keepalived reads it (`fallback`), with a warning saying so."""
        raw = self._arg(node, " or ".join(options))
        if raw is None or raw in options:
            return raw
        hint = next((o for o in options if o.lower() == raw.rstrip(";").lower()), None)
        semicolon = " and take no ';'" if raw.endswith(";") else ""
        also = f" (keepalived's values are case-sensitive{semicolon}: did you mean {hint}?)" if hint else ""
        self.diags.warning(node.loc, f"{node.keyword} {raw!r} is not {' or '.join(options)}{also}: keepalived "
                                     f"reads {fallback_text}, and so does cloudvip")
        return fallback

    def address(self, node: Node, raw: str | None = None, what: str = "an IPv4 or IPv6 address") -> IPAddress | None:
        raw = raw if raw is not None else self._arg(node, what)
        if raw is None:
            return None
        try:
            return ip_address(raw)
        except ValueError:
            self.diags.error(node.loc, f"{raw!r} is not an IP address", what)
            return None

    def ipv4(self, node: Node, raw: str) -> IPv4Address | None:
        addr = self.address(node, raw, "an IPv4 address")
        if addr is not None and not isinstance(addr, IPv4Address):
            self.diags.error(node.loc, f"{raw} is not IPv4", "an IPv4 address")
            return None
        return addr

    def interface_address(self, node: Node, raw: str) -> IPInterface | None:
        """ADDR[/PREFIX]; no prefix means a host route (/32 or /128), as keepalived does."""
        try:
            return ip_interface(raw)
        except ValueError:
            self.diags.error(node.loc, f"{raw!r} is not an address with optional /prefix",
                             "ADDRESS[/PREFIX], e.g. 192.168.1.100/24")
            return None

    def ifname(self, node: Node, raw: str | None = None) -> str | None:
        raw = raw if raw is not None else self._arg(node, "an interface name")
        if raw is None:
            return None
        if not _IFNAME.match(raw):
            self.diags.error(node.loc, f"{raw!r} is not a valid interface name",
                             "1..15 characters, no '/', ':' or spaces")
            return None
        try:
            ip_address(raw)
        except ValueError:
            return raw
        self.diags.warning(node.loc, f"{node.keyword} {raw} is an IP address, not an interface name: a template "
                                     "mistake? (keepalived too looks for an interface of that name)")
        return raw

    def command(self, node: Node) -> ScriptCommand | None:
        """keepalived joins the words and splits the command line itself (no shell)."""
        if not node.args:
            self.diags.error(node.loc, f"{node.keyword} needs a command", "a path and its arguments")
            return None
        raw = " ".join(t.text for t in node.args)
        try:
            argv = tuple(shlex.split(raw))
        except ValueError as exc:
            self.diags.error(node.loc, f"{node.keyword}: cannot split {raw!r}: {exc}",
                             "balanced quotes in the command line")
            return None
        if not argv:
            self.diags.error(node.loc, f"{node.keyword} is empty", "a path and its arguments")
            return None
        return ScriptCommand(raw, argv)

    def notify_command(self, node: Node) -> ScriptCommand | None:
        """keepalived's notify form: `KEYWORD "script args" [username [groupname]]`. Only the
        first word is the command line (quote it to pass arguments): the next two are the user
        and group to run it as, as keepalived reads them."""
        if not node.args:
            return self.command(node)
        first, rest = node.args[0], node.args[1:]
        cmd = self.command(Node(node.keyword, [first], node.loc))
        if cmd is None:
            return None
        if len(rest) > 2:
            self.diags.warning(node.loc, f"{node.keyword}: {' '.join(t.text for t in rest[2:])!r} ignored after "
                                         "the user and group (keepalived reads only those)")
        if rest and not first.quoted:  # `notify_master /x.sh arg`: keepalived runs /x.sh as user "arg"
            self.diags.warning(node.loc, f"{node.keyword}: {cmd.argv[0]} runs as user {rest[0].text!r}"
                                         + (f", group {rest[1].text!r}" if len(rest) > 1 else "")
                               + ", as keepalived reads it (quote the whole command line to pass it arguments)")
        return ScriptCommand(cmd.raw, cmd.argv, rest[0].text if rest else None,
                             rest[1].text if len(rest) > 1 else None)

    def block(self, node: Node) -> list[Node]:
        if node.children is None:
            self.diags.error(node.loc, f"{node.keyword} needs a block", f"{node.keyword} {{ ... }}")
            return []
        return node.children

    def no_block(self, node: Node) -> None:
        if node.children is not None:
            self.diags.error(node.loc, f"{node.keyword} takes no block", f"{node.keyword} VALUE on one line")
