"""A bridge namespace with N node namespaces attached by veth pairs.

Everything lives in namespaces this module creates (named `<prefix><pid>-...`)
and removes; the host's own interfaces are never touched. Stale namespaces
of a run that died (its pid is gone) are swept by `sweep_stale`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address
from typing import Callable

DELAY_QUEUE = 7  # the NFQUEUE number the delayer reads, in each namespace


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done


def sweep_stale(prefix: str) -> list[str]:
    """Remove namespaces named <prefix><pid>-* whose pid no longer runs."""
    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.match(rf"^{re.escape(prefix)}(\d+)-", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _kill_all(name)
            ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


def _kill_all(ns: str) -> None:
    for pid in ip("netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


@dataclass
class Node:
    name: str  # namespace
    address: IPv4Interface
    index: int
    mac: str
    address6: IPv6Interface

    @property
    def ip(self) -> IPv4Address:
        return self.address.ip

    @property
    def ip6(self) -> IPv6Address:
        return self.address6.ip


@dataclass
class Topology:
    prefix: str
    count: int
    subnet: str = "198.51.100"  # TEST-NET-2: documentation space, never routed
    subnet6: str = "2001:db8"  # the IPv6 documentation prefix
    first_host: int = 11
    nodes: list[Node] = field(default_factory=list)
    extra: list[Node] = field(default_factory=list)  # e.g. a client

    def __post_init__(self) -> None:
        self.tag = f"{self.prefix}{os.getpid()}-"
        self.bridge_ns = f"{self.tag}br"
        self._delayers: dict[str, subprocess.Popen[str]] = {}

    def exec_args(self, node: Node, *args: str) -> list[str]:
        return ["ip", "netns", "exec", node.name, *args]

    def create(self) -> Topology:
        sweep_stale(self.prefix)
        try:
            ip("netns", "add", self.bridge_ns)
            ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
            ip("-n", self.bridge_ns, "link", "set", "br0", "up")
            for i in range(self.count):
                self.nodes.append(self._attach(f"n{i + 1}", self.first_host + i, i))
        except Exception:
            self.destroy()
            raise
        return self

    def add_host(self, short: str, host: int) -> Node:
        node = self._attach(short, host, len(self.nodes) + len(self.extra))
        self.extra.append(node)
        return node

    def _attach(self, short: str, host: int, index: int) -> Node:
        ns = f"{self.tag}{short}"
        ip("netns", "add", ns)
        ip("link", "add", f"v{short}", "netns", self.bridge_ns, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("-n", self.bridge_ns, "link", "set", f"v{short}", "master", "br0", "up")
        # no IPv6 duplicate address detection: a tentative link-local address cannot send
        for conf in ("all", "default", "eth0"):
            done = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{conf}.accept_dad=0"],
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"sysctl in {ns}: {done.stderr.strip()}")
        addr = IPv4Interface(f"{self.subnet}.{host}/24")
        addr6 = IPv6Interface(f"{self.subnet6}::{host}/64")
        ip("-n", ns, "addr", "add", str(addr), "dev", "eth0")
        ip("-n", ns, "addr", "add", str(addr6), "dev", "eth0", "nodad")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "set", "eth0", "up")
        mac = json.loads(ip("-j", "-n", ns, "link", "show", "eth0").stdout)[0]["address"]
        return Node(ns, addr, index, mac, addr6)

    def destroy(self) -> None:
        for proc in self._delayers.values():
            proc.kill()
            proc.wait()
        self._delayers.clear()
        for node in self.nodes + self.extra:
            _kill_all(node.name)
            ip("netns", "del", node.name, check=False)
        ip("netns", "del", self.bridge_ns, check=False)
        self.nodes.clear()
        self.extra.clear()

    def __enter__(self) -> Topology:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # ---------- looking inside ----------
    def has_address(self, node: Node, address: str) -> bool:
        want = ip_address(address)
        out = json.loads(ip("-j", "-n", node.name, "addr", "show", "dev", "eth0").stdout or "[]")
        # an IPv6 address still in DAD is not usable yet: count it only once it is
        return any(ip_address(a["local"]) == want and not a.get("tentative")
                   for link in out for a in link.get("addr_info", []))

    def holders(self, address: str) -> list[Node]:
        return [n for n in self.nodes if self.has_address(n, address)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, step: float = 0.005) -> float | None:
        """Poll until predicate() is true; the monotonic time it became true, or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return time.monotonic()
            time.sleep(step)
        return None

    def set_link(self, node: Node, up: bool) -> None:
        ip("-n", node.name, "link", "set", "eth0", "up" if up else "down")

    def _nft_drop(self, node: Node, table: str, match: list[str] | None, verdict: str = "drop") -> None:
        """(Re)place an nftables table that drops (or gives `verdict` to) the node's outgoing
        packets matching `match` (None: remove it). This kind of machine's kernel has no netem."""
        nft = ["ip", "netns", "exec", node.name, "nft"]
        subprocess.run([*nft, "delete", "table", "inet", table], capture_output=True)
        if match is None:
            return
        for rule in (["add", "table", "inet", table],
                     ["add", "chain", "inet", table, "out", "{ type filter hook output priority 0; }"],
                     ["add", "rule", "inet", table, "out", *match, *verdict.split()]):
            done = subprocess.run([*nft, *rule], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"nft {' '.join(rule)}: {done.stderr.strip()}")

    def set_loss(self, node: Node, percent: int, vrrp_only: bool = False) -> None:
        """Drop `percent`% of the node's outgoing packets at random (nftables numgen); with
        `vrrp_only`, of its VRRP adverts only (ARP and the rest untouched)."""
        match = (["meta", "l4proto", "112"] if vrrp_only else []) + ["numgen", "random", "mod", "100", "<",
                                                                      str(percent)]
        self._nft_drop(node, "cvloss", match if percent > 0 else None)

    def set_delay(self, node: Node, delay_ms: float, jitter_ms: float = 0.0, seed: int | None = None) -> None:
        """Delay the node's outgoing VRRP by `delay_ms` +- `jitter_ms` (0: stop): NFQUEUE hands
        them to cloudvip_lab.delayer in the namespace (netem's job, on a kernel without netem).
        The rule goes through iptables: this kernel has the xt NFQUEUE target, not nft_queue."""
        # `--queue-bypass`: were the delayer gone, packets would flow undelayed, not vanish
        rule = ["OUTPUT", "-p", "112", "-j", "NFQUEUE", "--queue-num", str(DELAY_QUEUE), "--queue-bypass"]
        old = self._delayers.pop(node.name, None)
        if old:
            subprocess.run(self.exec_args(node, "iptables", "-D", *rule), capture_output=True)
            old.terminate()
            old.wait(5)
        if delay_ms <= 0 and jitter_ms <= 0:
            return
        args = ["--queue", str(DELAY_QUEUE), "--delay", str(delay_ms), "--jitter", str(jitter_ms)]
        proc = subprocess.Popen(self.exec_args(node, sys.executable, "-m", "cloudvip_lab.delayer", *args,
                                               *(["--seed", str(seed)] if seed is not None else [])),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._delayers[node.name] = proc
        line = proc.stdout.readline() if proc.stdout else ""
        if "ready" not in line:
            proc.kill()
            rest = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"delayer in {node.name} did not start: {line}{rest}")
        done = subprocess.run(self.exec_args(node, "iptables", "-A", *rule), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"iptables in {node.name}: {done.stderr.strip()}")

    def partition_vrrp(self, node: Node, on: bool) -> None:
        """Drop the node's outgoing VRRP (IP protocol 112) while everything else still flows."""
        self._nft_drop(node, "cvpart", ["meta", "l4proto", "112"] if on else None)

    def neighbour_mac(self, node: Node, address: str) -> str | None:
        for n in json.loads(ip("-j", "-n", node.name, "neigh", "show", address).stdout or "[]"):
            if n.get("lladdr"):
                return str(n["lladdr"])
        return None

    def mac(self, node: Node) -> str:
        return node.mac
