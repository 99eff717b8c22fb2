"""A local Hetzner Cloud API on 127.0.0.1 for the tests, the lab and bench/: the endpoints
failover uses, with the public API's paths, payloads and error bodies (no emulator on PyPI
covers them: see shared notes, cloud-facts).

- GET /v1/servers[?label_selector=k=v], GET /v1/servers/{id}
- POST /v1/servers/{id}/actions/change_alias_ips {"network", "alias_ips"}: replaces the list;
  an alias IP held by another server is a 409 `conflict`
- GET /v1/floating_ips, GET /v1/floating_ips/{id}
- POST /v1/floating_ips/{id}/actions/assign {"server"} (moves it directly) and .../unassign
- GET /v1/networks/{id}, GET /v1/actions/{id} and /v1/{resource}/actions/{id}
- PUT /v1/floating_ips/{id}, PUT /v1/networks/{id}: name, description and labels updated (an
  empty body changes nothing)
Servers sit in a location (a datacenter there), floating IPs have a home location; both with
the location's network zone. `read_only_tokens` read but answer any write 403 `forbidden`.
Actions start `running` and take effect when they finish (`action_seconds` later) as `success`.
Errors are `{"error": {"code", "message"}}`: 401 `unauthorized`, 404 `not_found`, 409 `conflict`,
423 `locked` (a new action on a resource whose action still runs), 429 `rate_limit_exceeded`.
Every answer carries RateLimit-Limit/-Remaining/-Reset from a token bucket of 3600 refilled at
1/s. `faults` answers the next calls of an operation with errors;
`calls` records every request (timed), `writes()` counts successful assignments per server.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from typing import Any, Callable

from .json_api import JsonApiHandler, finish_due

RATE_LIMIT = 3600
#: Hetzner's locations and their network zones
LOCATIONS = {"fsn1": ("Falkenstein", "DE", "eu-central"), "nbg1": ("Nuremberg", "DE", "eu-central"),
             "hel1": ("Helsinki", "FI", "eu-central"), "ash": ("Ashburn, VA", "US", "us-east"),
             "hil": ("Hillsboro, OR", "US", "us-west"), "sin": ("Singapore", "SG", "ap-southeast")}


@dataclass
class Server:
    id: int
    name: str
    public_ip: str
    labels: dict[str, str] = field(default_factory=dict)
    private: dict[int, tuple[str, list[str]]] = field(default_factory=dict)  # network -> (ip, alias_ips)
    mac: str = "86:00:00:00:00:01"
    location: str = "fsn1"


@dataclass
class FloatingIp:
    id: int
    ip: str
    type: str  # ipv4 | ipv6
    server: int | None = None
    home_location: str = "fsn1"
    name: str = ""
    description: str | None = None


@dataclass(frozen=True)
class ApiCall:
    op: str  # e.g. "assign", "change_alias_ips", "get_floating_ip"
    method: str
    path: str
    started: float  # time.monotonic()
    ended: float
    status: int
    server: int | None  # the server an assignment names


@dataclass
class _Action:
    id: int
    command: str
    resources: list[dict[str, Any]]
    due: float
    effect: Callable[[], None] | None
    status: str = "running"

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "command": self.command, "status": self.status,
                "progress": 100 if self.status != "running" else 0, "started": "2026-01-01T00:00:00+00:00",
                "finished": None if self.status == "running" else "2026-01-01T00:00:01+00:00",
                "resources": self.resources, "error": None}


class HcloudEmulator:
    def __init__(self, token: str = "test-token", action_seconds: float = 0.0) -> None:
        self.token, self.action_seconds = token, action_seconds
        self.read_only_tokens: set[str] = set()
        self.servers: dict[int, Server] = {}
        self.floating_ips: dict[int, FloatingIp] = {}
        self.networks: dict[int, str] = {}  # id -> ip_range
        self.faults: dict[str, list[tuple[int, str]]] = {}  # op -> [(status, code), ...]
        self.delays: dict[str, float] = {}  # op -> seconds each call takes (a slow API)
        self.calls: list[ApiCall] = []
        self.lock = threading.RLock()
        self._actions: dict[int, _Action] = {}
        self._next_id = 1000
        self._bucket, self._bucket_at = float(RATE_LIMIT), time.monotonic()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---------- the world ----------
    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def add_server(self, name: str, public_ip: str, labels: dict[str, str] | None = None) -> Server:
        with self.lock:
            s = Server(self.new_id(), name, public_ip, dict(labels or {}))
            s.mac = "86:00:00:%02x:%02x:%02x" % (s.id >> 16 & 255, s.id >> 8 & 255, s.id & 255)
            self.servers[s.id] = s
            return s

    def add_network(self, ip_range: str) -> int:
        with self.lock:
            nid = self.new_id()
            self.networks[nid] = ip_range
            return nid

    def attach(self, server: Server, network: int, ip: str) -> None:
        with self.lock:
            server.private[network] = (ip, [])

    def add_floating_ip(self, ip: str, type_: str = "ipv4") -> FloatingIp:
        with self.lock:
            f = FloatingIp(self.new_id(), ip, type_)
            self.floating_ips[f.id] = f
            return f

    def writes(self) -> dict[int, int]:
        out: dict[int, int] = {}
        with self.lock:
            for c in self.calls:
                if c.op in ("assign", "change_alias_ips") and c.status < 400 and c.server is not None:
                    out[c.server] = out.get(c.server, 0) + 1
        return out

    def alias_holders(self, network: int, ip: str) -> list[int]:
        with self.lock:
            self._finish_due()
            return [s.id for s in self.servers.values() if ip in s.private.get(network, ("", []))[1]]

    def floating_holder(self, fip: int) -> int | None:
        with self.lock:
            self._finish_due()
            return self.floating_ips[fip].server

    # ---------- JSON shapes (what hcloud-python parses) ----------
    def _server_json(self, s: Server) -> dict[str, Any]:
        return {"id": s.id, "name": s.name, "status": "running", "created": "2026-01-01T00:00:00+00:00",
                "labels": s.labels, "server_type": None, "image": None, "iso": None,
                "datacenter": {"id": 1, "name": f"{s.location}-dc1", "description": f"{s.location} DC 1",
                               "location": _location_json(s.location),
                               "server_types": {"supported": [], "available": [], "available_for_migration": []}},
                "public_net": {"ipv4": {"id": s.id, "ip": s.public_ip, "blocked": False, "dns_ptr": "x"},
                               "ipv6": None, "firewalls": [],
                               "floating_ips": [f.id for f in self.floating_ips.values() if f.server == s.id]},
                "private_net": [{"network": n, "ip": ip, "alias_ips": list(alias), "mac_address": s.mac}
                                for n, (ip, alias) in s.private.items()],
                "protection": {"delete": False, "rebuild": False}, "volumes": [], "load_balancers": [],
                "primary_disk_size": 20, "rescue_enabled": False, "locked": False, "backup_window": None,
                "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": 0, "placement_group": None}

    def _fip_json(self, f: FloatingIp) -> dict[str, Any]:
        return {"id": f.id, "name": f.name or f"fip-{f.id}", "description": f.description, "ip": f.ip,
                "type": f.type, "server": f.server, "dns_ptr": [{"ip": f.ip, "dns_ptr": "x"}],
                "home_location": _location_json(f.home_location),
                "blocked": False, "protection": {"delete": False}, "labels": {},
                "created": "2026-01-01T00:00:00+00:00"}

    # ---------- actions ----------
    def _action(self, command: str, resources: list[dict[str, Any]], effect: Callable[[], None]) -> _Action:
        a = _Action(self.new_id(), command, resources, time.monotonic() + self.action_seconds, effect)
        self._actions[a.id] = a
        self._finish_due()
        return a

    def _locked(self, kind: str, rid: int) -> bool:
        """A resource with a running action takes no other (Hetzner answers 423 `locked`)."""
        return any(a.status == "running" and {"id": rid, "type": kind} in a.resources for a in self._actions.values())

    def _finish_due(self) -> None:
        finish_due(self._actions.values(), "running", "success")

    # ---------- rate limit ----------
    def _rate_headers(self, spend: bool) -> tuple[bool, dict[str, str]]:
        now = time.monotonic()
        self._bucket = min(RATE_LIMIT, self._bucket + (now - self._bucket_at))
        self._bucket_at = now
        ok = self._bucket >= 1
        if spend and ok:
            self._bucket -= 1
        reset = int(time.time() + (RATE_LIMIT - self._bucket))
        return ok, {"RateLimit-Limit": str(RATE_LIMIT), "RateLimit-Remaining": str(int(self._bucket)),
                    "RateLimit-Reset": str(reset)}

    # ---------- HTTP ----------
    def _route(self, op: str, m: re.Match[str] | None, body: dict[str, Any]) -> tuple[int, dict[str, Any], int | None]:
        """(status, payload, server an assignment names)"""
        self._finish_due()
        key = int(m.group(1)) if m and m.groups() else 0
        if op == "change_alias_ips":
            return self._change_alias_ips(key, body)
        if op in ("assign", "unassign"):
            return self._assign(key, body if op == "assign" else {"server": None})
        if op == "get_action":
            a = self._actions.get(key)
            return (200, {"action": a.json()}, None) if a else _not_found("action")
        if op == "get_server":
            srv = self.servers.get(key)
            return (200, {"server": self._server_json(srv)}, None) if srv else _not_found("server")
        if op == "list_servers":
            return 200, {"servers": [self._server_json(x) for x in self.servers.values()],
                         "meta": _one_page(len(self.servers))}, None
        if op == "get_floating_ip":
            f = self.floating_ips.get(key)
            return (200, {"floating_ip": self._fip_json(f)}, None) if f else _not_found("floating_ip")
        if op == "list_floating_ips":
            return 200, {"floating_ips": [self._fip_json(f) for f in self.floating_ips.values()],
                         "meta": _one_page(len(self.floating_ips))}, None
        if op == "update_floating_ip" and key in self.floating_ips:
            f = self.floating_ips[key]
            f.name, f.description = body.get("name", f.name), body.get("description", f.description)
            return 200, {"floating_ip": self._fip_json(f)}, None
        if op in ("get_network", "update_network") and key in self.networks:
            return 200, {"network": {
                "id": key, "name": f"net-{key}", "ip_range": self.networks[key], "routes": [],
                "subnets": [{"type": "cloud", "ip_range": self.networks[key], "network_zone": "eu-central",
                             "gateway": str(next(ip_network(self.networks[key]).hosts())), "vswitch_id": None}],
                "servers": [x.id for x in self.servers.values() if key in x.private], "load_balancers": [],
                "protection": {"delete": False}, "labels": {}, "created": "2026-01-01T00:00:00+00:00",
                "expose_routes_to_vswitch": False}}, None
        return _not_found("resource")

    def _assign(self, fid: int, body: dict[str, Any]) -> tuple[int, dict[str, Any], int | None]:
        f = self.floating_ips.get(fid)
        if f is None:
            return _not_found("floating_ip")
        server = body.get("server")
        if server is not None and server not in self.servers:
            return 400, _error("invalid_input", f"server {server} not found"), None

        def effect() -> None:
            f.server = server

        if self._locked("floating_ip", fid):
            return _locked()
        a = self._action("assign_floating_ip" if server else "unassign_floating_ip",
                         [{"id": fid, "type": "floating_ip"}] + ([{"id": server, "type": "server"}] if server else []),
                         effect)
        return 201, {"action": a.json()}, server

    def _change_alias_ips(self, sid: int, body: dict[str, Any]) -> tuple[int, dict[str, Any], int | None]:
        s = self.servers.get(sid)
        if s is None:
            return _not_found("server")
        network, alias = body.get("network"), list(body.get("alias_ips", []))
        if network not in s.private:
            return 400, _error("server_not_attached_to_network", f"server {sid} is not in network {network}"), None
        for other in self.servers.values():
            taken = set(alias) & set(other.private.get(network, ("", []))[1])
            if other.id != sid and taken:
                return 409, _error("conflict", f"alias IP {sorted(taken)[0]} is in use by server {other.id}"), None
        ip = s.private[network][0]

        def effect() -> None:
            s.private[network] = (ip, alias)

        if self._locked("server", sid):
            return _locked()
        a = self._action("change_alias_ips", [{"id": sid, "type": "server"}], effect)
        return 201, {"action": a.json()}, sid

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emu = self

        class Handler(JsonApiHandler):
            def serve(self, method: str) -> None:
                started = time.monotonic()
                path = self.path.split("?", 1)[0]
                self.pause(emu.delays.get(_operation(method, path)[0], 0.0))
                body = self.json_body()
                server = None
                with emu.lock:
                    auth = self.headers.get("Authorization", "")
                    read_only = auth in {f"Bearer {t}" for t in emu.read_only_tokens}
                    if auth != f"Bearer {emu.token}" and not read_only:
                        op, status, payload = "auth", 401, _error("unauthorized", "unable to authenticate")
                        ok, headers = emu._rate_headers(spend=False)
                    elif read_only and method != "GET":
                        op, status, payload = "forbidden", 403, _error("forbidden", "insufficient permissions")
                        ok, headers = emu._rate_headers(spend=True)
                    else:
                        ok, headers = emu._rate_headers(spend=True)
                        if body is None:
                            op, status, payload = "bad_json", 400, _error("json_error", "invalid JSON")
                        elif not ok:
                            op, status, payload = "rate_limited", 429, _error("rate_limit_exceeded", "limit")
                        else:
                            op, m = _operation(method, path)
                            pending = emu.faults.get(op)
                            if pending:  # answered before anything happens, as a failed call is
                                status, code = pending.pop(0)
                                payload = _error(code, "injected by the test")
                                if status == 429:
                                    headers["RateLimit-Remaining"] = "0"
                                    headers["RateLimit-Reset"] = str(int(time.time()) + 1)
                            else:
                                status, payload, server = emu._route(op, m, body)
                                if op == "list_servers" and "label_selector=" in self.path:
                                    payload = _select(payload, self.path)
                self.answer(status, payload, headers)
                with emu.lock:
                    emu.calls.append(ApiCall(op, method, path, started, time.monotonic(), status, server))

        return Handler


ROUTES = [("POST", re.compile(r"/v1/servers/(\d+)/actions/change_alias_ips"), "change_alias_ips"),
          ("POST", re.compile(r"/v1/floating_ips/(\d+)/actions/assign"), "assign"),
          ("POST", re.compile(r"/v1/floating_ips/(\d+)/actions/unassign"), "unassign"),
          ("GET", re.compile(r"/v1/(?:\w+/)?actions/(\d+)"), "get_action"),
          ("GET", re.compile(r"/v1/servers/(\d+)"), "get_server"),
          ("GET", re.compile(r"/v1/servers"), "list_servers"),
          ("GET", re.compile(r"/v1/floating_ips/(\d+)"), "get_floating_ip"),
          ("GET", re.compile(r"/v1/floating_ips"), "list_floating_ips"),
          ("GET", re.compile(r"/v1/networks/(\d+)"), "get_network"),
          ("PUT", re.compile(r"/v1/floating_ips/(\d+)"), "update_floating_ip"),
          ("PUT", re.compile(r"/v1/networks/(\d+)"), "update_network")]


def _operation(method: str, path: str) -> tuple[str, re.Match[str] | None]:
    for verb, pattern, op in ROUTES:
        m = pattern.fullmatch(path)
        if verb == method and m:
            return op, m
    return "unknown", None


def _location_json(name: str) -> dict[str, Any]:
    city, country, zone = LOCATIONS[name]
    return {"id": sorted(LOCATIONS).index(name) + 1, "name": name, "description": f"{city} DC Park 1",
            "country": country, "city": city, "latitude": 0.0, "longitude": 0.0, "network_zone": zone}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": {}}}


def _locked() -> tuple[int, dict[str, Any], None]:
    return 423, _error("locked", "the resource is locked by a running action"), None


def _not_found(kind: str) -> tuple[int, dict[str, Any], None]:
    return 404, _error("not_found", f"{kind} not found"), None


def _one_page(total: int) -> dict[str, Any]:
    return {"pagination": {"page": 1, "per_page": 50, "previous_page": None, "next_page": None,
                           "last_page": 1, "total_entries": total}}


def _select(payload: dict[str, Any], url: str) -> dict[str, Any]:
    """label_selector=key=value (the equality form)."""
    from urllib.parse import parse_qs, urlsplit

    selector = parse_qs(urlsplit(url).query).get("label_selector", [""])[0]
    key, _, value = selector.partition("=")
    servers = [s for s in payload["servers"] if key in s["labels"] and (not value or s["labels"][key] == value)]
    return {"servers": servers, "meta": _one_page(len(servers))}


TOKEN = "lab-token-not-secret"
FLOATING_VIP = "203.0.113.200"  # floating IPs are public addresses
ALIAS_VIP = "198.51.100.100"  # alias IPs live in the private network (the lab subnet)


@dataclass
class HetznerWorld:
    """Two servers (one per lab node, same addresses), a private network, a floating IP."""

    emulator: HcloudEmulator
    servers: list[Server]
    network: int
    floating_ip: FloatingIp

    def holder_ids(self, mode: str) -> list[int]:
        """Servers the VIP is assigned to in `mode`."""
        if mode == "floating_ip":
            held = self.emulator.floating_holder(self.floating_ip.id)
            return [held] if held is not None else []
        return self.emulator.alias_holders(self.network, ALIAS_VIP)


def build_world(addresses: tuple[str, ...] = ("198.51.100.11", "198.51.100.12"),
                action_seconds: float = 0.0) -> HetznerWorld:
    emu = HcloudEmulator(token=TOKEN, action_seconds=action_seconds)
    network = emu.add_network("198.51.100.0/24")
    servers = []
    for i, ip in enumerate(addresses):
        s = emu.add_server(f"node{i + 1}", ip, {"cloudvip-group": "lab"})
        emu.attach(s, network, ip)
        servers.append(s)
    return HetznerWorld(emu, servers, network, emu.add_floating_ip(FLOATING_VIP))
