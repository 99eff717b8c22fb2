"""A local Azure Resource Manager on 127.0.0.1 for the tests, the lab and bench/: the calls a VIP
move makes, with ARM's paths, JSON and error bodies, for the real azure-mgmt-network client
(base_url https://127.0.0.1:PORT behind the lab's TLS edge: the SDK sends a bearer token over
HTTPS only).

- GET .../providers/Microsoft.Network/networkInterfaces[/NAME]; PUT .../networkInterfaces/NAME
  (If-Match honoured: a stale ETag is 412; a private IP another NIC holds or a running update
  is adding is 400 `PrivateIPAddressInUse`; a NIC with an update running is 409
  `AnotherOperationInProgress`)
- GET .../routeTables/T, .../routeTables/T/routes/R; PUT .../routeTables/T/routes/R
- GET .../providers/Microsoft.Compute/virtualMachines (tags, NICs, for peer discovery)
- long-running writes: 200/201 at once with `Azure-AsyncOperation` (the operation's status URL:
  `InProgress`, then `Succeeded` or `Failed`) or `Location` (202 while running, then the
  resource), and `Retry-After`; the change takes effect when the operation ends (`op_seconds`)
Errors are ARM's `{"error": {"code", "message"}}`; a request without a token the fake IMDS issued
is 401; `faults` answers the next calls of an operation with errors (429 with `Retry-After`);
`calls` records every request; `writes()` counts successful writes per NIC / next hop.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from .json_api import JsonApiHandler, finish_due

SUBSCRIPTION = "6f1d3c2a-0b7e-4c55-9a21-3e8d5f00c1a5"
GROUP, LOCATION = "rg-cloudvip-lab", "westeurope"
VNET, SUBNET = "vnet-lab", "default"


@dataclass
class IpConfig:
    name: str
    ip: str
    primary: bool = False


@dataclass
class Nic:
    name: str
    mac: str  # as ARM writes it: 00-0D-3A-...
    configs: list[IpConfig]
    vm: str
    ip_forwarding: bool = False
    etag: str = field(default_factory=lambda: f'W/"{os.urandom(8).hex()}"')


@dataclass
class Vm:
    name: str
    nic: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RouteEntry:
    prefix: str
    hop_type: str
    hop_ip: str | None


@dataclass
class _Operation:
    id: str
    due: float
    effect: Callable[[], None] | None
    resource: str  # the resource's path (for a Location poll's final answer)
    status: str = "InProgress"
    ips: set[str] = field(default_factory=set)  # private IPs it adds (reserved while it runs)
    nic: str = ""


@dataclass(frozen=True)
class ApiCall:
    op: str  # "get_nic", "put_nic", "put_route", ...
    method: str
    path: str
    started: float
    ended: float
    status: int
    target: str  # the NIC a write names, or the route's next hop


class ArmEmulator:
    def __init__(self, op_seconds: float = 0.0, retry_after: int = 1, lro: str = "Azure-AsyncOperation") -> None:
        self.op_seconds, self.retry_after, self.lro = op_seconds, retry_after, lro
        self.nics: dict[str, Nic] = {}
        self.vms: dict[str, Vm] = {}
        self.tables: dict[str, dict[str, RouteEntry]] = {}
        self.faults: dict[str, list[tuple[int, str]]] = {}  # op -> [(status, code)]
        self.delays: dict[str, float] = {}  # op -> seconds each call takes (a slow API)
        self.calls: list[ApiCall] = []
        self.tokens: set[str] = set()
        self.lock = threading.RLock()
        self._ops: dict[str, _Operation] = {}
        self._ids = itertools.count(1000)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        #: where the SDK reaches this API (set by the TLS edge in front of it)
        self.public_base = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---------- the world ----------
    def add_vm(self, name: str, ip: str, mac: str, tags: dict[str, str] | None = None) -> Nic:
        with self.lock:
            nic = Nic(f"{name}-nic", "-".join(mac.upper().split(":")), [IpConfig("ipconfig1", ip, True)], name)
            self.nics[nic.name] = nic
            self.vms[name] = Vm(name, nic.name, dict(tags or {}))
            return nic

    def issue_token(self) -> str:
        token = "eyJ0eXAi.lab-" + os.urandom(12).hex()
        with self.lock:
            self.tokens.add(token)
        return token

    def nic_holders(self, ip: str) -> list[str]:
        with self.lock:
            self._finish_due()
            return [n.name for n in self.nics.values() if any(c.ip == ip for c in n.configs[1:])]

    def route_hop(self, table: str, route: str) -> str | None:
        with self.lock:
            self._finish_due()
            entry = self.tables.get(table, {}).get(route)
            return entry.hop_ip if entry is not None and entry.hop_type == "VirtualAppliance" else None

    def writes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for c in self.calls:
                if c.op in ("put_nic", "put_route") and c.status < 400:
                    out[c.target] = out.get(c.target, 0) + 1
        return out

    # ---------- JSON ----------
    def _base(self, kind: str) -> str:
        return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.{kind}"

    def _nic_json(self, n: Nic, state: str = "Succeeded") -> dict[str, Any]:
        nid = f"{self._base('Network')}/networkInterfaces/{n.name}"
        subnet = f"{self._base('Network')}/virtualNetworks/{VNET}/subnets/{SUBNET}"
        return {"name": n.name, "id": nid, "etag": n.etag, "location": LOCATION,
                "type": "Microsoft.Network/networkInterfaces",
                "properties": {"provisioningState": state, "macAddress": n.mac, "primary": True,
                               "enableIPForwarding": n.ip_forwarding,
                               "virtualMachine": {"id": f"{self._base('Compute')}/virtualMachines/{n.vm}"},
                               "ipConfigurations": [
                                   {"name": c.name, "id": f"{nid}/ipConfigurations/{c.name}", "etag": n.etag,
                                    "properties": {"privateIPAddress": c.ip, "privateIPAllocationMethod": "Static",
                                                   "privateIPAddressVersion": "IPv4", "primary": c.primary,
                                                   "provisioningState": state, "subnet": {"id": subnet}}}
                                   for c in n.configs]}}

    def _route_json(self, table: str, name: str, r: RouteEntry, state: str = "Succeeded") -> dict[str, Any]:
        props: dict[str, Any] = {"addressPrefix": r.prefix, "nextHopType": r.hop_type, "provisioningState": state}
        if r.hop_ip is not None:
            props["nextHopIpAddress"] = r.hop_ip
        return {"name": name, "id": f"{self._base('Network')}/routeTables/{table}/routes/{name}",
                "etag": 'W/"1"', "type": "Microsoft.Network/routeTables/routes", "properties": props}

    def _vm_json(self, v: Vm) -> dict[str, Any]:
        return {"name": v.name, "id": f"{self._base('Compute')}/virtualMachines/{v.name}", "location": LOCATION,
                "type": "Microsoft.Compute/virtualMachines", "tags": v.tags,
                "properties": {"provisioningState": "Succeeded", "networkProfile": {"networkInterfaces": [
                    {"id": f"{self._base('Network')}/networkInterfaces/{v.nic}", "properties": {"primary": True}}]}}}

    # ---------- operations ----------
    def _operation(self, resource: str, effect: Callable[[], None]) -> _Operation:
        o = _Operation(f"{next(self._ids)}-{os.urandom(4).hex()}", time.monotonic() + self.op_seconds, effect,
                       resource)
        self._ops[o.id] = o
        self._finish_due()
        return o

    def _finish_due(self) -> None:
        finish_due(self._ops.values(), "InProgress", "Succeeded")

    def _lro_headers(self, o: _Operation) -> dict[str, str]:
        url = (f"{self.public_base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Network/locations/{LOCATION}/"
               f"{'operations' if self.lro == 'Azure-AsyncOperation' else 'operationResults'}/{o.id}"
               f"?api-version=2024-05-01")
        return {self.lro: url, "Retry-After": str(self.retry_after)}

    # ---------- routing ----------
    def _route(self, method: str, path: str, body: dict[str, Any],
               headers: Any) -> tuple[str, int, dict[str, Any], dict[str, str], str]:
        """(op, status, payload, headers, target)"""
        self._finish_due()
        found = _match(method, path)
        if found is None:
            return "unknown", *_error(404, "NotFound", f"The resource '{path}' was not found."), {}, ""
        op, m = found
        g = m.groupdict()
        if g.get("sub") != SUBSCRIPTION:
            return op, *_error(404, "SubscriptionNotFound", f"The subscription '{g.get('sub')}' could not be "
                                                           "found."), {}, ""
        if g.get("rg") not in (None, GROUP) and g.get("rg", "").lower() != GROUP:
            return op, *_error(404, "ResourceGroupNotFound", f"Resource group '{g.get('rg')}' could not be "
                                                            "found."), {}, ""
        pending = self.faults.get(op)
        if pending:
            status, code = pending.pop(0)
            extra = {"Retry-After": str(self.retry_after)} if status == 429 else {}
            return op, *_error(status, code, "injected by the test"), extra, ""
        handler: Callable[..., tuple[int, dict[str, Any], dict[str, str], str]] = getattr(self, f"_{op}")
        return (op, *handler(g, body, headers))

    def _nic_state(self, nic: Nic) -> str:
        """ARM's provisioningState: `Updating` while an update of the NIC runs."""
        running = any(o.status == "InProgress" and o.nic == nic.name for o in self._ops.values())
        return "Updating" if running else "Succeeded"

    def _list_nics(self, g: dict[str, str], b: Any, h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        return 200, {"value": [self._nic_json(n, self._nic_state(n)) for n in self.nics.values()]}, {}, ""

    def _get_nic(self, g: dict[str, str], b: Any, h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        nic = self.nics.get(g["name"])
        if nic is None:
            return (*_error(404, "NotFound", f"Resource {g['name']} not found."), {}, "")
        return 200, self._nic_json(nic, self._nic_state(nic)), {}, ""

    def _put_nic(self, g: dict[str, str], b: dict[str, Any], h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        nic = self.nics.get(g["name"])
        if nic is None:
            return (*_error(404, "NotFound", f"Resource {g['name']} not found."), {}, "")
        match = h.get("If-Match")
        if match is not None and match != "*" and match != nic.etag:
            return (*_error(412, "PreconditionFailed", f"Precondition failed: the ETag {match} does not match "
                                                       f"{nic.etag}."), {}, nic.name)
        if any(o.status == "InProgress" and o.nic == nic.name for o in self._ops.values()):
            return (*_error(409, "AnotherOperationInProgress", f"Another operation on this or dependent resource "
                                                               f"is in progress ({nic.name})."), {}, nic.name)
        try:
            configs = [IpConfig(str(c["name"]), str(c["properties"]["privateIPAddress"]),
                                bool(c["properties"].get("primary", False)))
                       for c in b["properties"]["ipConfigurations"]]
        except (KeyError, TypeError) as exc:
            return (*_error(400, "InvalidRequestFormat", f"Cannot parse the request: {exc}"), {}, nic.name)
        if not configs or not configs[0].primary or configs[0].ip != nic.configs[0].ip:
            return (*_error(400, "NicMustHavePrimaryIpConfiguration", "The primary IP configuration of a NIC "
                                                                      "cannot be removed or changed."), {}, nic.name)
        reserved = {ip for o in self._ops.values() if o.status == "InProgress" for ip in o.ips}
        for c in configs[1:]:
            held = [n.name for n in self.nics.values() if n is not nic and any(x.ip == c.ip for x in n.configs)]
            if held or c.ip in reserved:
                return (*_error(400, "PrivateIPAddressInUse", f"IP configuration {c.name} is using the private IP "
                                f"address {c.ip} which is already allocated to resource "
                                f"{held[0] if held else 'an operation in progress'}."), {}, nic.name)
        nic.etag = f'W/"{os.urandom(8).hex()}"'

        def effect() -> None:
            nic.configs = configs

        o = self._operation(f"{self._base('Network')}/networkInterfaces/{nic.name}", effect)
        o.nic, o.ips = nic.name, {c.ip for c in configs} - {c.ip for c in nic.configs}
        state = "Succeeded" if o.status == "Succeeded" else "Updating"
        return 200, self._nic_json(nic, state), self._lro_headers(o), nic.name

    def _get_table(self, g: dict[str, str], b: Any, h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        table = self.tables.get(g["table"])
        if table is None:
            return (*_error(404, "ResourceNotFound", f"The Resource 'Microsoft.Network/routeTables/{g['table']}' "
                                                     f"under resource group '{GROUP}' was not found."), {}, "")
        return 200, {"name": g["table"], "id": f"{self._base('Network')}/routeTables/{g['table']}",
                     "location": LOCATION, "properties": {
                         "provisioningState": "Succeeded",
                         "routes": [self._route_json(g["table"], n, r) for n, r in table.items()]}}, {}, ""

    def _get_route(self, g: dict[str, str], b: Any, h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        table = self.tables.get(g["table"])
        route = table.get(g["name"]) if table is not None else None
        if route is None:
            return (*_error(404, "NotFound", f"Resource {g['name']} not found."), {}, "")
        return 200, self._route_json(g["table"], g["name"], route), {}, ""

    def _put_route(self, g: dict[str, str], b: dict[str, Any],
                   h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        table = self.tables.get(g["table"])
        if table is None:
            return (*_error(404, "ResourceNotFound", f"The Resource 'Microsoft.Network/routeTables/{g['table']}' "
                                                     f"under resource group '{GROUP}' was not found."), {}, "")
        props: dict[str, Any] = b["properties"] if isinstance(b.get("properties"), dict) else {}
        prefix, hop_type = str(props.get("addressPrefix", "")), str(props.get("nextHopType", ""))
        hop_ip = props.get("nextHopIpAddress")
        if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+/\d+", prefix):
            return (*_error(400, "InvalidRequestFormat", f"Invalid addressPrefix '{prefix}'."), {}, "")
        if hop_type == "VirtualAppliance" and not hop_ip:
            return (*_error(400, "NextHopIpAddressMissing", "A route with next hop type VirtualAppliance needs "
                                                            "nextHopIpAddress."), {}, "")
        entry = RouteEntry(prefix, hop_type, str(hop_ip) if hop_ip else None)
        created = g["name"] not in table

        def effect() -> None:
            table[g["name"]] = entry

        o = self._operation(f"{self._base('Network')}/routeTables/{g['table']}/routes/{g['name']}", effect)
        state = "Succeeded" if o.status == "Succeeded" else "Updating"
        return (201 if created else 200), self._route_json(g["table"], g["name"], entry, state), \
            self._lro_headers(o), entry.hop_ip or ""

    def _list_vms(self, g: dict[str, str], b: Any, h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        return 200, {"value": [self._vm_json(v) for v in self.vms.values()]}, {}, ""

    def _operation_status(self, g: dict[str, str], b: Any, h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        o = self._ops.get(g["op"])
        if o is None:
            return (*_error(404, "NotFound", f"Operation {g['op']} not found."), {}, "")
        return 200, {"name": o.id, "status": o.status}, ({"Retry-After": str(self.retry_after)}
                                                          if o.status == "InProgress" else {}), ""

    def _operation_result(self, g: dict[str, str], b: Any, h: Any) -> tuple[int, dict[str, Any], dict[str, str], str]:
        o = self._ops.get(g["op"])
        if o is None:
            return (*_error(404, "NotFound", f"Operation {g['op']} not found."), {}, "")
        if o.status == "InProgress":
            return 202, {}, self._lro_headers(o), ""
        found = _match("GET", o.resource)
        assert found is not None
        status, payload, _, _ = getattr(self, f"_{found[0]}")(found[1].groupdict(), {}, {})
        return status, payload, {}, ""

    # ---------- HTTP ----------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emu = self

        class Handler(JsonApiHandler):
            content_type = "application/json; charset=utf-8"

            def serve(self, method: str) -> None:
                started = time.monotonic()
                parts = urlsplit(self.path)
                self.pause(emu.delays.get(_op_name(method, parts.path), 0.0))
                body = self.json_body()
                target, extra = "", dict[str, str]()
                auth = self.headers.get("Authorization", "")
                with emu.lock:
                    if auth.removeprefix("Bearer ") not in emu.tokens:
                        op = "auth"
                        status, payload = _error(401, "AuthenticationFailed", "Authentication failed. The "
                                                 "'Authorization' header is missing or invalid.")
                    elif "api-version" not in parse_qs(parts.query):
                        op = "no_api_version"
                        status, payload = _error(400, "MissingApiVersionParameter", "The api-version query "
                                                 "parameter (?api-version=) is required for all requests.")
                    elif body is None:
                        op = "bad_json"
                        status, payload = _error(400, "InvalidRequestContent", "The request content was invalid "
                                                 "and could not be deserialized.")
                    else:
                        op, status, payload, extra, target = emu._route(method, parts.path, body, self.headers)
                    emu.calls.append(ApiCall(op, method, parts.path, started, time.monotonic(), status, target))
                self.answer(status, payload, {"x-ms-request-id": os.urandom(8).hex()} | extra)

        return Handler


_RG = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers"
ROUTES = [("GET", re.compile(_RG + r"/Microsoft\.Network/networkInterfaces"), "list_nics"),
          ("GET", re.compile(_RG + r"/Microsoft\.Network/networkInterfaces/(?P<name>[^/]+)"), "get_nic"),
          ("PUT", re.compile(_RG + r"/Microsoft\.Network/networkInterfaces/(?P<name>[^/]+)"), "put_nic"),
          ("GET", re.compile(_RG + r"/Microsoft\.Network/routeTables/(?P<table>[^/]+)"), "get_table"),
          ("GET", re.compile(_RG + r"/Microsoft\.Network/routeTables/(?P<table>[^/]+)/routes/(?P<name>[^/]+)"),
           "get_route"),
          ("PUT", re.compile(_RG + r"/Microsoft\.Network/routeTables/(?P<table>[^/]+)/routes/(?P<name>[^/]+)"),
           "put_route"),
          ("GET", re.compile(_RG + r"/Microsoft\.Compute/virtualMachines"), "list_vms"),
          ("GET", re.compile(r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Network/locations/[^/]+/"
                             r"operations/(?P<op>[^/]+)"), "operation_status"),
          ("GET", re.compile(r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Network/locations/[^/]+/"
                             r"operationResults/(?P<op>[^/]+)"), "operation_result")]


def _match(method: str, path: str) -> tuple[str, re.Match[str]] | None:
    return next(((op, m) for verb, pattern, op in ROUTES
                 if verb == method and (m := pattern.fullmatch(path)) is not None), None)


def _op_name(method: str, path: str) -> str:
    found = _match(method, path)
    return found[0] if found else ""


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


@dataclass
class ArmWorld:
    """One VM (and NIC) per lab node in one resource group, an empty route table."""

    emulator: ArmEmulator
    nics: list[Nic]
    table: str = "rt-cloudvip"

    def holders(self, mode: str, vip: str) -> list[str]:
        """The NICs (ip_config) or next-hop addresses (route_table) the VIP goes to."""
        if mode == "ip_config":
            return self.emulator.nic_holders(vip)
        hop = self.emulator.route_hop(self.table, "cloudvip-" + vip.replace(".", "-"))
        return [hop] if hop else []


def build_world(nodes: list[tuple[str, str]], op_seconds: float = 0.0, retry_after: int = 1,
                lro: str = "Azure-AsyncOperation") -> ArmWorld:
    """`nodes`: (address, MAC) per VM, named node1, node2 ..."""
    emu = ArmEmulator(op_seconds, retry_after, lro)
    nics = [emu.add_vm(f"node{i + 1}", ip, mac, tags={"cloudvip-group": "lab"}) for i, (ip, mac) in enumerate(nodes)]
    world = ArmWorld(emu, nics)
    emu.tables[world.table] = {}
    return world
