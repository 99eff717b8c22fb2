"""The cloud's data plane in the lab: packets to the VIP go where the cloud's state says, some
time after it says so, and nowhere else.

The bridge namespace becomes the VPC's router (198.51.100.1 on the nodes' segment) and a
client namespace sits behind it on its own segment (192.0.2.0/24), so it reaches the VIP only
through the router: no ARP between client and nodes. The router sends the VIP to the node the
cloud names (a /32 route through that node's address; an Elastic IP is translated to the node's
address instead), `propagation` seconds after the cloud's state changed; with no owner the VIP
is unreachable. A node that carries the VIP but is not the cloud's owner gets nothing; a node
the cloud points to without the address drops what it gets (it does not forward). Both are
reported when they happen.

`Client` asks every node's echo service through the VIP every 10 ms and records who answered.
"""

from __future__ import annotations

import select
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface
from typing import Callable

from .netns_services import enter_netns
from .topology import Node, Topology, ip

ROUTER_IP, CLIENT_NET, CLIENT_IP, CLIENT_GW = "198.51.100.1", "192.0.2.0/24", "192.0.2.10", "192.0.2.1"
ECHO_PORT = 7007


@dataclass(frozen=True)
class Route:
    """Where the cloud sends the VIP: node index (None: nowhere); `translate`: an Elastic IP's
    1:1 NAT to the node's own address instead of a route to it."""
    node: int | None
    translate: bool = False


class Fabric:
    def __init__(self, topo: Topology, vip: str, propagation: float, cloud_route: Callable[[], Route],
                 on_host: bool = True) -> None:
        self.topo, self.vip, self.propagation = topo, vip, propagation
        self.cloud_route, self.on_host = cloud_route, on_host
        self.events: list[tuple[float, str]] = []  # (monotonic, what happened), for the lab to print
        self.applied_at: list[tuple[float, Route]] = []  # when the data plane changed, and to what
        self.changed_at: list[tuple[float, Route]] = []  # when the cloud's state changed (before propagation)
        self.adverts: list[tuple[float, str, int]] = []  # (monotonic, source, priority) of every VRRP advert
        self.applied = Route(None)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._echoes: list[socket.socket] = []
        self._conditions: set[str] = set()  # what _check_hosts reported last
        self._set_up()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="fabric")
        self._thread.start()
        self._watch: socket.socket | None = None
        watching = threading.Event()
        threading.Thread(target=self._watch_adverts, args=(watching,), daemon=True, name="adverts").start()
        watching.wait(5)

    # ---------- set-up ----------
    def _set_up(self) -> None:
        br = self.topo.bridge_ns
        ip("-n", br, "addr", "add", f"{ROUTER_IP}/24", "dev", "br0")
        self._sysctl(br, "net.ipv4.ip_forward=1")
        self.client = Node(f"{self.topo.tag}cl", IPv4Interface(f"{CLIENT_IP}/24"),
                           len(self.topo.nodes) + len(self.topo.extra), "", IPv6Interface("::1/128"))
        ip("netns", "add", self.client.name)
        self.topo.extra.append(self.client)  # removed with the topology
        ip("link", "add", "vcl", "netns", br, "type", "veth", "peer", "name", "eth0", "netns", self.client.name)
        ip("-n", br, "addr", "add", f"{CLIENT_GW}/24", "dev", "vcl")
        ip("-n", br, "link", "set", "vcl", "up")
        ip("-n", self.client.name, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        ip("-n", self.client.name, "link", "set", "lo", "up")
        ip("-n", self.client.name, "link", "set", "eth0", "up")
        ip("-n", self.client.name, "route", "add", "default", "via", CLIENT_GW)
        self.restore_routes()
        for node in self.topo.nodes:
            self._echoes.append(self._echo(node))
        self._program(Route(None))

    def restore_routes(self) -> None:
        """The nodes' way back to the client (a link taken down loses it)."""
        for node in self.topo.nodes:
            ip("-n", node.name, "route", "replace", CLIENT_NET, "via", ROUTER_IP)

    @staticmethod
    def _sysctl(ns: str, setting: str) -> None:
        done = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", setting], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"sysctl {setting} in {ns}: {done.stderr.strip()}")

    def _echo(self, node: Node) -> socket.socket:
        """A UDP echo on the node that answers with its name (what the client counts)."""
        out: dict[str, socket.socket] = {}

        def serve() -> None:
            enter_netns(node.name)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", ECHO_PORT))
            out["sock"] = s
            ready.set()
            name = f"node{node.index + 1}".encode()
            while s.fileno() != -1:
                try:
                    data, peer = s.recvfrom(512)
                    if peer is None:  # the socket closed under us (the fabric closing)
                        return
                    s.sendto(data + b" " + name, peer)
                except OSError:  # no route back while the node's link is down: answer the next one
                    continue

        ready = threading.Event()
        threading.Thread(target=serve, daemon=True).start()
        ready.wait(5)
        return out["sock"]

    def _watch_adverts(self, watching: threading.Event) -> None:
        """Time every node's adverts where they enter the router's bridge (a port sees what its
        node sends): when a new master begins, with no extra peer in the agents' configs."""
        enter_netns(self.topo.bridge_ns)
        self._watch = sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
        sock.settimeout(0.2)
        watching.set()
        while not self._stop.is_set():
            try:
                pkt, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[1] != 0x0800 or addr[2] == socket.PACKET_OUTGOING or len(pkt) < 24 or pkt[9] != 112:
                continue
            ihl = (pkt[0] & 0x0F) * 4
            if len(pkt) > ihl + 2:
                with self._lock:
                    self.adverts.append((time.monotonic(), socket.inet_ntoa(pkt[12:16]), pkt[ihl + 2]))

    def first_advert(self, src: str, since: float) -> float | None:
        """When `src` sent its first advert after `since` (a new master's first)."""
        with self._lock:
            return next((t for t, a, _ in self.adverts if a == src and t >= since), None)

    # ---------- following the cloud ----------
    def _program(self, route: Route) -> None:
        """Point the router's VIP where `route` says (atomically replaced)."""
        br = self.topo.bridge_ns
        if route.translate:
            rules = "" if route.node is None else \
                f"add rule ip cvfabric pre ip daddr {self.vip} dnat to {self.topo.nodes[route.node].ip}\n"
            script = (f"table ip cvfabric {{}}\ndelete table ip cvfabric\ntable ip cvfabric {{\n"
                      f"  chain pre {{ type nat hook prerouting priority -100; }}\n}}\n{rules}")
            done = subprocess.run(["ip", "netns", "exec", br, "nft", "-f", "-"], input=script,
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"nft in {br}: {done.stderr.strip()}")
        elif route.node is None:
            ip("-n", br, "route", "replace", "unreachable", f"{self.vip}/32")
        else:
            ip("-n", br, "route", "replace", f"{self.vip}/32", "via", str(self.topo.nodes[route.node].ip), "dev", "br0")
        with self._lock:
            self.applied = route
            self.applied_at.append((time.monotonic(), route))

    def _follow(self) -> None:
        pending: list[tuple[float, Route]] = []
        seen = self.applied
        last_check = 0.0
        while not self._stop.wait(0.005):
            now = time.monotonic()
            try:
                route = self.cloud_route()
            except Exception as exc:  # the emulator going away at the end of a run
                self.note(f"data plane: cannot read the cloud's state: {exc}")
                continue
            if route != seen:
                seen = route
                pending.append((now + self.propagation, route))
                with self._lock:
                    self.changed_at.append((now, route))
            try:
                while pending and pending[0][0] <= now:
                    _, route = pending.pop(0)
                    self._program(route)
                    where = "nowhere" if route.node is None else f"node{route.node + 1}"
                    self.note(f"data plane: the VIP now reaches {where}")
                if self.on_host and now - last_check >= 0.5:
                    last_check = now
                    self._check_hosts()
            except (OSError, RuntimeError, ValueError) as exc:  # an `ip` or `nft` call failed: said, and on
                self.note(f"data plane: {exc}")

    def _check_hosts(self) -> None:
        """Report when a node begins to carry the VIP without getting its traffic, or the cloud
        begins to send it to a node without the address."""
        owner = self.applied.node
        now: set[str] = set()
        for node in self.topo.nodes:
            carries = self.topo.has_address(node, self.vip)
            if carries and node.index != owner:
                now.add(f"node{node.index + 1} carries {self.vip} but the cloud sends it elsewhere: "
                        f"it gets no traffic")
            elif not carries and node.index == owner:
                now.add(f"the cloud sends {self.vip} to node{node.index + 1}, which does not carry it: "
                        f"dropped there")
        for text in sorted(now - self._conditions):
            self.note(text)
        self._conditions = now

    def note(self, text: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), text))

    def reaches_since(self, node: int, since: float) -> float | None:
        """When the data plane began sending the VIP to `node` after `since` (None: not yet)."""
        with self._lock:
            return next((t for t, r in self.applied_at if t >= since and r.node == node), None)

    def take_events(self) -> list[tuple[float, str]]:
        with self._lock:
            out, self.events = self.events, []
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for s in self._echoes + ([self._watch] if self._watch is not None else []):
            s.close()


class Client:
    """Every `interval` s, one UDP request to VIP:ECHO_PORT from the client namespace (a new
    socket each time: a new flow, as a new connection would be); records (sent, who answered)."""

    def __init__(self, fabric: Fabric, interval: float = 0.01, timeout: float = 0.01) -> None:
        self.vip, self.interval, self.timeout = fabric.vip, interval, timeout
        self.samples: list[tuple[float, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fabric.client.name,), daemon=True, name="client")
        self._thread.start()

    def _run(self, ns: str) -> None:
        enter_netns(ns)
        seq = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            sent = time.monotonic()
            who: str | None = None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.sendto(str(seq).encode(), (self.vip, ECHO_PORT))
                    end = sent + self.timeout
                    while who is None and (left := end - time.monotonic()) > 0:
                        if select.select([s], [], [], left)[0]:
                            data = s.recv(512).decode(errors="replace").split()
                            if data and data[0] == str(seq):
                                who = data[-1]
                except OSError:  # unreachable: an ICMP error from the router
                    pass
            with self._lock:
                self.samples.append((sent, who))
            next_at = max(next_at + self.interval, time.monotonic())  # late: no burst to catch up
            time.sleep(max(0.0, next_at - time.monotonic()))

    def served_by(self, since: float) -> list[tuple[float, str | None]]:
        with self._lock:
            return [s for s in self.samples if s[0] >= since]

    def outage(self, since: float) -> tuple[float, float, str] | None:
        """The longest run without an answer after `since`: (last answered before it, first
        answered after it, who answered then); None if no answer came back after a gap."""
        samples = self.served_by(since - 1.0)
        best: tuple[float, float, str] | None = None
        last_ok: float | None = None
        for t, who in samples:
            if who is None:
                continue
            if last_ok is not None and (best is None or t - last_ok > best[1] - best[0]):
                best = (last_ok, t, who)
            last_ok = t
        return best

    def last_answer(self) -> tuple[float, str] | None:
        with self._lock:
            return next(((t, w) for t, w in reversed(self.samples) if w is not None), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


def first_answer(fabric: Fabric, client: Client, want: int, since: float) -> float | None:
    """When the client was first answered by node `want` after `since`, the data plane sending
    the VIP there (since then, or already); None if not (yet)."""
    if fabric.applied.node != want:
        return None
    reached = fabric.reaches_since(want, since) or since
    name = f"node{want + 1}"
    return next((t for t, who in client.served_by(reached) if who == name), None)


def outage_parts(fabric: Fabric, client: Client, master_ip: str, want: int, since: float) -> dict[str, float] | None:
    """The client's longest outage after `since`, split into detection (its last answer -> the
    new master's first advert), api (-> the cloud's state names node `want`) and propagation
    (-> its first answer); they add up to `outage`. None if no request went unanswered."""
    gap = client.outage(since)
    if gap is None:
        return None
    last_ok, first_ok, _ = gap
    master = fabric.first_advert(master_ip, since) or last_ok
    changed = next((t for t, r in fabric.changed_at if t >= since and r.node == want), master)
    return {"outage": first_ok - last_ok, "detection": master - last_ok, "api": changed - master,
            "propagation": first_ok - changed}
