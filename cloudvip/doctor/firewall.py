"""Would the host firewall let a packet through? nftables (`nft -j list ruleset`) and iptables
(`iptables-save`) read as they are and walked for one packet, the way the kernel walks them:
every base chain of the hook in priority order, rules in order, jumps followed.

A match this module does not understand (a set lookup by name, a mark, a rate limit) is neither
true nor false: a rule that may drop the packet then makes the answer `maybe`, never a guess.
Connection tracking is taken as `new`: a backup's peer sends adverts one way only, so they are
never `established`.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any, Callable, Iterable

IPPROTO_VRRP, IPPROTO_TCP = 112, 6
#: nft payload protocols that are a transport header: matching one implies that protocol
_L4_HEADERS = {"icmp": 1, "igmp": 2, "icmpv6": 58, "sctp": 132, "dccp": 33, "udplite": 136, "ah": 51, "esp": 50,
               "comp": 108}
_PROTOCOLS = {"vrrp": 112, "tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "all": -1, "carp": 112}


@dataclass(frozen=True, slots=True)
class Packet:
    hook: str  # "input" or "output"
    proto: int
    saddr: IPv4Address | IPv6Address
    daddr: IPv4Address | IPv6Address
    ifname: str  # the input interface (input) or the output one (output)
    dport: int | None = None
    uid: int = 0  # the sending process's user (output: `meta skuid`, `-m owner --uid-owner`)

    @property
    def family(self) -> str:
        return "ip" if self.saddr.version == 4 else "ip6"


class Outcome(str, Enum):
    ACCEPT = "accept"
    DROP = "drop"
    MAYBE = "maybe"  # a rule we cannot evaluate may drop it


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    where: str = ""  # the chain and rule (or policy) that decided


# a match: True, False or None (cannot tell)
Match = Callable[[Packet], "bool | None"]


@dataclass
class Rule:
    matches: list[Match]
    verdict: str  # accept, drop, reject, jump:CHAIN, goto:CHAIN, return, or "" (no verdict: counter, log)
    text: str


@dataclass
class Chain:
    name: str
    rules: list[Rule] = field(default_factory=list)
    hook: str | None = None  # a base chain's hook
    priority: int = 0
    policy: str = "accept"


@dataclass
class Ruleset:
    source: str  # "nftables table inet filter", "iptables"
    chains: dict[str, Chain]
    family: str = "inet"  # ip, ip6 or inet (both): a table sees only its family's packets

    def verdict(self, pkt: Packet) -> Verdict:
        if self.family not in ("inet", pkt.family):
            return Verdict(Outcome.ACCEPT)
        for base in sorted((c for c in self.chains.values() if c.hook == pkt.hook), key=lambda c: c.priority):
            v = self._walk(base, pkt, 0)
            if v is None:
                v = Verdict(Outcome(_final(base.policy)), f"{self.source} chain {base.name} policy {base.policy}")
            if v.outcome is not Outcome.ACCEPT:
                return v
        return Verdict(Outcome.ACCEPT)

    def _walk(self, chain: Chain, pkt: Packet, depth: int) -> Verdict | None:
        """The verdict of this chain, None when it fell through (or returned). A rule that may
        match and drop makes the chain's best answer MAYBE; one that may match and accept is
        taken as not matching (the worse case)."""
        maybe: Verdict | None = None
        for rule in chain.rules:
            results = [m(pkt) for m in rule.matches]
            if any(r is False for r in results):
                continue
            certain = all(r is True for r in results)
            kind, _, target = rule.verdict.partition(":")
            if kind in ("jump", "goto") and target in self.chains and depth < 16:
                found = self._walk(self.chains[target], pkt, depth + 1)
                if found is None:
                    if kind == "goto" and certain:
                        return maybe
                    continue
            elif kind in ("accept", "drop", "reject"):
                found = Verdict(Outcome(_final(kind)), f"{self.source} chain {chain.name}: {rule.text}")
            elif kind == "return" and certain:
                return maybe
            else:
                continue
            if certain:
                return maybe if maybe is not None and found.outcome is Outcome.ACCEPT else found
            if found.outcome is not Outcome.ACCEPT and maybe is None:
                maybe = Verdict(Outcome.MAYBE, found.where)
        return maybe


def _final(verdict: str) -> str:
    return "accept" if verdict.lower() == "accept" else "drop"


# ---------- nftables ----------
def _addr_in(value: Any, addr: IPv4Address | IPv6Address) -> bool | None:
    if isinstance(value, str):
        try:
            return addr in ip_network(value, strict=False)
        except ValueError:
            return None  # a named set (@name) or a symbol
    if isinstance(value, dict) and "prefix" in value:
        p = value["prefix"]
        try:
            return addr in ip_network(f"{p['addr']}/{p['len']}", strict=False)
        except (ValueError, KeyError):
            return None
    if isinstance(value, dict) and "range" in value:
        lo, hi = value["range"]
        try:
            return ip_address(lo) <= addr <= ip_address(hi)  # type: ignore[operator]
        except (ValueError, TypeError):
            return None
    if isinstance(value, dict) and "set" in value:
        return _any_of(_addr_in(v, addr) for v in value["set"])
    if isinstance(value, list):
        return _any_of(_addr_in(v, addr) for v in value)
    return None


def _uid(value: Any) -> Any:
    """A user as nft and iptables print it (a number, or a name) -> its uid (None: unknown)."""
    import pwd

    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    if isinstance(value, str):
        try:
            return pwd.getpwnam(value).pw_uid
        except KeyError:
            return None
    if isinstance(value, dict) and "set" in value:
        return {"set": [_uid(v) for v in value["set"]]}
    return value


def _any_of(results: Iterable[bool | None]) -> bool | None:
    out: bool | None = False
    for r in results:
        if r is True:
            return True
        if r is None:
            out = None
    return out


def _proto_is(value: Any, proto: int) -> bool | None:
    if isinstance(value, dict) and "set" in value:
        return _any_of(_proto_is(v, proto) for v in value["set"])
    if isinstance(value, list):
        return _any_of(_proto_is(v, proto) for v in value)
    if isinstance(value, int):
        return value == proto
    if isinstance(value, str):
        number = _PROTOCOLS.get(value.lower())
        return None if number is None else number == proto
    return None


def _value_is(value: Any, wanted: int | str | None) -> bool | None:
    if isinstance(value, dict) and "set" in value:
        return _any_of(_value_is(v, wanted) for v in value["set"])
    if isinstance(value, list):
        return _any_of(_value_is(v, wanted) for v in value)
    if isinstance(value, dict) and "range" in value and isinstance(wanted, int):
        lo, hi = value["range"]
        return int(lo) <= wanted <= int(hi) if isinstance(lo, int) and isinstance(hi, int) else None
    if isinstance(value, (int, str)):
        if wanted is None:
            return False
        if isinstance(value, str) and isinstance(wanted, str) and value.endswith("*"):
            return wanted.startswith(value[:-1])
        return value == wanted
    return None


def _nft_match(expr: dict[str, Any]) -> Match:
    op = expr.get("op", "==")
    left, right = expr.get("left"), expr.get("right")

    def judge(pkt: Packet) -> bool | None:
        result = _nft_left(left, right, pkt)
        if result is None or op in ("==", "in"):
            return result
        if op == "!=":
            return not result
        return None

    return judge


def _nft_left(left: Any, right: Any, pkt: Packet) -> bool | None:
    if not isinstance(left, dict):
        return None
    if "meta" in left:
        key = left["meta"].get("key")
        if key == "l4proto":
            return _proto_is(right, pkt.proto)
        if key == "protocol":
            return _value_is(right, pkt.family)
        if key == "nfproto":
            return _value_is(right, "ipv4" if pkt.family == "ip" else "ipv6")
        if key in ("iifname", "oifname"):
            if (key == "iifname") != (pkt.hook == "input"):
                return None
            return _value_is(right, pkt.ifname)
        if key == "skuid":
            return _value_is(_uid(right), pkt.uid) if pkt.hook == "output" else None
        if key in ("iif", "oif") and isinstance(right, str):
            return _value_is(right, pkt.ifname) if (key == "iif") == (pkt.hook == "input") else None
        return None
    if "payload" in left:
        p = left["payload"]
        proto, fld = p.get("protocol"), p.get("field")
        if proto in ("ip", "ip6"):
            if proto != pkt.family:
                return False
            if fld in ("protocol", "nexthdr"):
                return _proto_is(right, pkt.proto)
            if fld == "saddr":
                return _addr_in(right, pkt.saddr)
            if fld == "daddr":
                return _addr_in(right, pkt.daddr)
            return None
        if proto in ("tcp", "udp", "th"):
            if proto != "th" and _PROTOCOLS[proto] != pkt.proto:
                return False
            if fld == "dport":
                return _value_is(right, pkt.dport)
            return None
        if proto in _L4_HEADERS:  # a header of another protocol than the packet's: no match
            return False if _L4_HEADERS[proto] != pkt.proto else None
        return None
    if "ct" in left and left["ct"].get("key") == "state":
        return _value_is(right, "new") if not isinstance(right, list) else _any_of(_value_is(v, "new") for v in right)
    return None


def _nft_rule(exprs: list[dict[str, Any]], text: str) -> Rule:
    matches: list[Match] = []
    verdict = ""
    for e in exprs:
        kind, body = next(iter(e.items())) if len(e) == 1 else ("unknown", {})
        body = body if isinstance(body, dict) else {}
        if kind == "match":
            matches.append(_nft_match(body))
        elif kind in ("accept", "drop", "return"):
            verdict = kind
        elif kind == "reject":
            verdict = "reject"
        elif kind in ("jump", "goto"):
            verdict = f"{kind}:{body.get('target', '')}"
        elif kind in ("counter", "log", "comment", "limit", "notrack", "mangle", "xt", "meter", "set", "queue",
                      "lookup", "unknown"):
            if kind in ("limit", "xt", "meter", "lookup", "unknown"):
                matches.append(lambda _pkt: None)
            if kind == "queue":
                verdict = "drop"  # a userspace program decides: not ours to judge
                matches.append(lambda _pkt: None)
    return Rule(matches, verdict, text)


def parse_nft(ruleset_json: str) -> list[Ruleset]:
    """One Ruleset per table of family ip, ip6 or inet (a packet passes each table's base chains)."""
    items = json.loads(ruleset_json).get("nftables", [])
    tables: dict[tuple[str, str], Ruleset] = {}
    for item in items:
        if "chain" in item:
            c = item["chain"]
            if c.get("family") not in ("ip", "ip6", "inet") or c.get("type", "filter") != "filter":
                continue
            key = (c["family"], c["table"])
            rs = tables.setdefault(key, Ruleset(f"nftables table {c['family']} {c['table']}", {}))
            rs.chains[c["name"]] = Chain(c["name"], hook=c.get("hook"), priority=_prio(c.get("prio", 0)),
                                         policy=c.get("policy", "accept"))
        elif "rule" in item:
            r = item["rule"]
            found = tables.get((r.get("family", ""), r.get("table", "")))
            if found is None or r.get("chain") not in found.chains:
                continue
            rs = found
            text = f"rule handle {r.get('handle')}" + (f" ({r['comment']})" if r.get("comment") else "")
            rs.chains[r["chain"]].rules.append(_nft_rule(r.get("expr", []), text))
    for (family, _), rs in tables.items():
        rs.family = family
    return list(tables.values())


def _prio(value: Any) -> int:
    named = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
    if isinstance(value, int):
        return value
    return named.get(str(value), 0)


# ---------- iptables ----------
def parse_iptables_save(text: str, family: str = "ip") -> Ruleset:
    """The *filter table of `iptables-save` (or `ip6tables-save`)."""
    chains: dict[str, Chain] = {}
    table = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:]
        elif table != "filter" or not line or line.startswith("#"):
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            hook = {"INPUT": "input", "OUTPUT": "output"}.get(name)
            chains[name] = Chain(name, hook=hook, policy=policy if policy != "-" else "accept")
        elif line.startswith("-A "):
            words = shlex.split(line)
            chain = chains.setdefault(words[1], Chain(words[1]))
            chain.rules.append(_ipt_rule(words[2:], line, family))
    return Ruleset("iptables" if family == "ip" else "ip6tables", chains, family)


def _ipt_rule(words: list[str], text: str, family: str) -> Rule:
    matches: list[Match] = []
    verdict = ""
    negate = False
    i = 0
    while i < len(words):
        w = words[i]
        arg = words[i + 1] if i + 1 < len(words) else ""
        if w == "!":
            negate = True
            i += 1
            continue
        m: Match | None = None
        step = 2
        if w in ("-p", "--protocol"):
            m = (lambda a: lambda pkt: _proto_is(a, pkt.proto) if a.lower() != "all" else True)(arg)
        elif w in ("-s", "--source"):
            m = (lambda a: lambda pkt: _any_of(_addr_in(x, pkt.saddr) for x in a.split(",")))(arg)
        elif w in ("-d", "--destination"):
            m = (lambda a: lambda pkt: _any_of(_addr_in(x, pkt.daddr) for x in a.split(",")))(arg)
        elif w in ("-i", "--in-interface", "-o", "--out-interface"):
            inbound = w in ("-i", "--in-interface")
            m = (lambda a, inb: lambda pkt: _value_is(a.replace("+", "*"), pkt.ifname)
                 if (pkt.hook == "input") == inb else None)(arg, inbound)
        elif w in ("--dport", "--destination-port"):
            m = (lambda a: lambda pkt: _value_is(_port_range(a), pkt.dport))(arg)
        elif w == "--uid-owner":
            m = (lambda a: lambda pkt: _value_is(_uid(a), pkt.uid) if pkt.hook == "output" else None)(arg)
        elif w in ("--ctstate", "--state"):
            m = (lambda a: lambda pkt: "NEW" in a.upper().split(","))(arg)
        elif w == "-m":
            step = 2  # a module name: its options follow
        elif w in ("-j", "--jump", "-g", "--goto"):
            target = arg
            if target in ("ACCEPT", "DROP", "REJECT", "RETURN"):
                verdict = target.lower()
            elif target in ("LOG", "NFLOG", "CONNMARK", "MARK", "AUDIT"):
                verdict = ""
            elif target in ("NFQUEUE", "QUEUE"):
                verdict, m = "drop", (lambda _pkt: None)
            else:
                verdict = f"{'goto' if w in ('-g', '--goto') else 'jump'}:{target}"
        elif w.startswith("-"):
            # an option we do not evaluate (a mark, a limit, a comment's text is harmless)
            if w != "--comment":
                m = lambda _pkt: None  # noqa: E731
        else:
            step = 1
        if m is not None:
            matches.append(_negated(m) if negate else m)
        negate = False
        i += step
    return Rule(matches, verdict, text)


def _negated(m: Match) -> Match:
    def judge(pkt: Packet) -> bool | None:
        r = m(pkt)
        return None if r is None else not r
    return judge


def _port_range(text: str) -> Any:
    if ":" in text:
        lo, hi = text.split(":", 1)
        return {"range": [int(lo or 0), int(hi or 65535)]}
    return int(text) if text.isdigit() else text


# ---------- reading the host ----------
def host_rulesets(run: Callable[[list[str]], str | None] | None = None) -> tuple[list[Ruleset], list[str]]:
    """The host's rulesets and what could not be read (e.g. not root)."""
    run = run or _run
    rulesets: list[Ruleset] = []
    problems: list[str] = []
    if shutil.which("nft"):
        out = run(["nft", "-j", "list", "ruleset"])
        if out is None:
            problems.append("`nft -j list ruleset` failed (root needed)")
        elif out.strip():
            try:
                rulesets.extend(parse_nft(out))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"`nft -j list ruleset`: unreadable ({exc})")
    for cmd, fam in (("iptables-save", "ip"), ("ip6tables-save", "ip6")):
        if shutil.which(cmd):
            out = run([cmd])
            if out is None:
                problems.append(f"`{cmd}` failed (root needed)")
            elif "*filter" in out:
                if "(nf_tables)" in out:  # iptables-nft: its rules, read here, are nft's table FAMILY filter too
                    rulesets = [rs for rs in rulesets if not _iptables_nft_table(rs, fam)]
                rulesets.append(parse_iptables_save(out, fam))
    return rulesets, problems


def _iptables_nft_table(rs: Ruleset, family: str) -> bool:
    return rs.source == f"nftables table {family} filter" and bool({"INPUT", "OUTPUT"} & set(rs.chains))


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def judge(rulesets: list[Ruleset], pkt: Packet) -> Verdict:
    """The packet's fate through every ruleset (a drop in any is a drop)."""
    maybe: Verdict | None = None
    for rs in rulesets:
        v = rs.verdict(pkt)
        if v.outcome is Outcome.DROP:
            return v
        if v.outcome is Outcome.MAYBE and maybe is None:
            maybe = v
    return maybe or Verdict(Outcome.ACCEPT)
