"""A local Compute Engine API on 127.0.0.1 for the tests, the lab and bench/: the calls a VIP
move makes, with the REST API's paths, JSON and error bodies, for the real google-cloud-compute
client (api_endpoint http://127.0.0.1:PORT), and a metadata server per VM.

- GET  /compute/v1/projects/P/zones/Z/instances[/NAME]  (list: `filter=labels.K = "V"`)
- PATCH .../instances/NAME/updateNetworkInterface?networkInterface=nicN {fingerprint, aliasIpRanges}:
  a stale fingerprint is 412 `conditionNotMet`; an alias range another instance holds, 400
- GET  /compute/v1/projects/P/global/routes/NAME, POST .../global/routes, DELETE .../global/routes/NAME
- GET  .../zones/Z/operations/OP, .../global/operations/OP
- POST /token: the OAuth token endpoint a service-account key's `token_uri` names
Writes answer an operation `RUNNING` that takes effect and turns `DONE` `op_seconds` later.
Errors are Google's `{"error": {"code", "message", "status", "errors": [{"reason", ...}]}}`;
a request without a token this API issued is 401. `faults` answers the next calls of an
operation with errors; `calls` records every request; `writes()` counts successful writes.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from .json_api import JsonApiHandler, finish_due

PROJECT, PROJECT_NUMBER, ZONE = "cloudvip-lab", "123456789012", "europe-west1-b"
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
          503: "UNAVAILABLE"}


def _fingerprint() -> str:
    return base64.b64encode(os.urandom(8)).decode()


@dataclass
class Nic:
    name: str
    ip: str
    mac: str
    alias: list[str] = field(default_factory=list)  # CIDRs
    fingerprint: str = field(default_factory=_fingerprint)


@dataclass
class Instance:
    name: str
    zone: str
    nics: list[Nic]
    labels: dict[str, str] = field(default_factory=dict)
    id: int = 0
    can_ip_forward: bool = False


@dataclass
class Route:
    name: str
    dest: str
    next_hop: str  # the instance's URL
    priority: int = 100
    tags: list[str] = field(default_factory=list)
    network: str = "default"


@dataclass
class _Operation:
    name: str
    kind: str  # e.g. "updateNetworkInterface", "insert", "delete"
    scope: str  # "zones/Z" or "global"
    target: str
    due: float
    effect: Callable[[], None] | None
    status: str = "RUNNING"
    ranges: list[str] = field(default_factory=list)  # alias ranges it adds (reserved while it runs)


@dataclass(frozen=True)
class ApiCall:
    op: str  # "get_instance", "update_nic", "insert_route", ...
    method: str
    path: str
    started: float
    ended: float
    status: int
    target: str  # the instance a write names (its name), or the route


class GceEmulator:
    def __init__(self, op_seconds: float = 0.0) -> None:
        self.op_seconds = op_seconds
        self.instances: dict[tuple[str, str], Instance] = {}  # (zone, name) ->
        self.routes: dict[str, Route] = {}
        self.faults: dict[str, list[tuple[int, str]]] = {}  # op -> [(status, reason)]
        self.delays: dict[str, float] = {}  # op -> seconds each call takes (a slow API)
        self.calls: list[ApiCall] = []
        self.tokens: set[str] = set()
        self.keys: dict[str, Any] = {}  # a service-account key's id -> its public key (self-signed JWTs)
        self.lock = threading.RLock()
        self._ops: dict[str, _Operation] = {}
        self._ids = itertools.count(1000)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---------- the world ----------
    def add_instance(self, name: str, ip: str, mac: str, zone: str = ZONE,
                     labels: dict[str, str] | None = None) -> Instance:
        with self.lock:
            inst = Instance(name, zone, [Nic("nic0", ip, mac)], dict(labels or {}), next(self._ids))
            self.instances[(zone, name)] = inst
            return inst

    def issue_token(self) -> str:
        token = "ya29.lab-" + os.urandom(12).hex()
        with self.lock:
            self.tokens.add(token)
        return token

    def authorized(self, token: str) -> bool:
        """A token this API issued, or a JWT signed by a registered service-account key (what
        google-auth sends for a key file: a self-signed JWT, no token exchange), not expired."""
        if token in self.tokens:
            return True
        parts = token.split(".")
        if len(parts) != 3:
            return False
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def unb64(part: str) -> bytes:
            return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        try:
            header, claims = json.loads(unb64(parts[0])), json.loads(unb64(parts[1]))
            key = self.keys[header["kid"]]
            key.verify(unb64(parts[2]), f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, KeyError, TypeError, InvalidSignature):
            return False
        return float(claims.get("exp", 0)) > time.time()

    def url(self, inst: Instance) -> str:
        return f"{self.endpoint}/compute/v1/projects/{PROJECT}/zones/{inst.zone}/instances/{inst.name}"

    def alias_holders(self, cidr: str) -> list[str]:
        with self.lock:
            self._finish_due()
            return [i.name for i in self.instances.values() for n in i.nics if cidr in n.alias]

    def route_target(self, name: str) -> str | None:
        with self.lock:
            self._finish_due()
            route = self.routes.get(name)
            return route.next_hop.rsplit("/", 1)[-1] if route else None

    def writes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for c in self.calls:
                if c.op in ("update_nic", "insert_route", "delete_route") and c.status < 400:
                    out[c.target] = out.get(c.target, 0) + 1
        return out

    # ---------- JSON ----------
    def _instance_json(self, i: Instance) -> dict[str, Any]:
        net = f"{self.endpoint}/compute/v1/projects/{PROJECT}/global/networks/default"
        return {"kind": "compute#instance", "id": str(i.id), "name": i.name, "status": "RUNNING",
                "zone": f"{self.endpoint}/compute/v1/projects/{PROJECT}/zones/{i.zone}", "labels": i.labels,
                "canIpForward": i.can_ip_forward, "selfLink": self.url(i),
                "networkInterfaces": [{"kind": "compute#networkInterface", "name": n.name, "network": net,
                                       "subnetwork": f"{self.endpoint}/compute/v1/projects/{PROJECT}/regions/"
                                                     f"{i.zone[:-2]}/subnetworks/default",
                                       "networkIP": n.ip, "fingerprint": n.fingerprint,
                                       "aliasIpRanges": [{"ipCidrRange": a} for a in n.alias]} for n in i.nics]}

    def _route_json(self, r: Route) -> dict[str, Any]:
        return {"kind": "compute#route", "name": r.name, "destRange": r.dest, "priority": r.priority,
                "nextHopInstance": r.next_hop, "tags": r.tags,
                "network": f"{self.endpoint}/compute/v1/projects/{PROJECT}/global/networks/{r.network}",
                "selfLink": f"{self.endpoint}/compute/v1/projects/{PROJECT}/global/routes/{r.name}"}

    def _op_json(self, o: _Operation) -> dict[str, Any]:
        base = f"{self.endpoint}/compute/v1/projects/{PROJECT}/{o.scope}"
        out = {"kind": "compute#operation", "id": str(abs(hash(o.name)) % 10**12), "name": o.name,
               "operationType": o.kind, "targetLink": o.target, "status": o.status,
               "progress": 100 if o.status == "DONE" else 0, "selfLink": f"{base}/operations/{o.name}"}
        if o.scope.startswith("zones/"):
            out["zone"] = base
        return out

    # ---------- operations ----------
    def _operation(self, kind: str, scope: str, target: str, effect: Callable[[], None]) -> _Operation:
        o = _Operation(f"operation-{next(self._ids)}-{os.urandom(4).hex()}", kind, scope, target,
                       time.monotonic() + self.op_seconds, effect)
        self._ops[o.name] = o
        self._finish_due()
        return o

    def _finish_due(self) -> None:
        finish_due(self._ops.values(), "RUNNING", "DONE")

    # ---------- routing ----------
    def _route(self, method: str, path: str, query: dict[str, list[str]],
               body: dict[str, Any]) -> tuple[str, int, dict[str, Any], str]:
        """(op, status, payload, target)"""
        self._finish_due()
        found = _match(method, path)
        if found is None:
            return "unknown", *_error(404, "notFound", f"The resource '{path}' was not found"), ""
        op, m = found
        g = m.groupdict()
        if g.get("project") != PROJECT:
            return op, *_error(404, "notFound", f"The resource 'projects/{g.get('project')}' was not found"), ""
        pending = self.faults.get(op)
        if pending:
            status, reason = pending.pop(0)
            return op, *_error(status, reason, "injected by the test"), ""
        handler: Callable[..., tuple[int, dict[str, Any], str]] = getattr(self, f"_{op}")
        return (op, *handler(g, query, body))

    def _instance(self, g: dict[str, str]) -> Instance | None:
        return self.instances.get((g["zone"], g["name"]))

    def _get_instance(self, g: dict[str, str], q: Any, b: Any) -> tuple[int, dict[str, Any], str]:
        inst = self._instance(g)
        if inst is None:
            return (*_error(404, "notFound", f"The resource 'instances/{g['name']}' was not found"), "")
        return 200, self._instance_json(inst), ""

    def _list_instances(self, g: dict[str, str], q: dict[str, list[str]], b: Any) -> tuple[int, dict[str, Any], str]:
        items = [i for i in self.instances.values() if i.zone == g["zone"]]
        flt = q.get("filter", [""])[0]
        m = re.fullmatch(r'\s*labels\.([-_a-z0-9]+)\s*=\s*"?([-_a-z0-9]*)"?\s*', flt)
        if flt and m is None:
            return (*_error(400, "invalid", f"Invalid value for field 'filter': '{flt}'"), "")
        if m:
            items = [i for i in items if i.labels.get(m.group(1)) == m.group(2)]
        return 200, {"kind": "compute#instanceList", "items": [self._instance_json(i) for i in items]}, ""

    def _update_nic(self, g: dict[str, str], q: dict[str, list[str]],
                    b: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        inst = self._instance(g)
        if inst is None:
            return (*_error(404, "notFound", f"The resource 'instances/{g['name']}' was not found"), "")
        nic = next((n for n in inst.nics if n.name == q.get("networkInterface", [""])[0]), None)
        if nic is None:
            return (*_error(400, "invalid", "Invalid value for field 'networkInterface'"), inst.name)
        if b.get("fingerprint") != nic.fingerprint:
            return (*_error(412, "conditionNotMet", "Supplied fingerprint does not match current metadata "
                                                    "fingerprint."), inst.name)
        # PATCH semantics: a body without aliasIpRanges leaves them as they are (the generated
        # client drops an empty list: googleapis/google-cloud-python#11931)
        ranges = [str(r.get("ipCidrRange", "")) for r in b["aliasIpRanges"]] if "aliasIpRanges" in b \
            else list(nic.alias)
        ranges = [r if "/" in r else f"{r}/32" for r in ranges]
        pending = {o.target: o.ranges for o in self._ops.values() if o.status == "RUNNING" and o.ranges}
        for other in self.instances.values():
            for n in other.nics:
                # held, or being added by a running operation (the address is reserved for it)
                taken = set(ranges) & (set(n.alias) | set(pending.get(self.url(other), [])))
                if other is not inst and taken:
                    return (*_error(400, "invalid", f"Invalid value for field 'resource.aliasIpRanges[0]."
                                    f"ipCidrRange': '{sorted(taken)[0]}'. The IP address is already being used "
                                    f"by another resource ({other.name})."), inst.name)
        nic.fingerprint = _fingerprint()  # the change is accepted: the old fingerprint is stale now

        def effect() -> None:
            nic.alias = ranges

        o = self._operation("updateNetworkInterface", f"zones/{inst.zone}", self.url(inst), effect)
        o.ranges = [r for r in ranges if r not in nic.alias]
        return 200, self._op_json(o), inst.name

    def _get_route(self, g: dict[str, str], q: Any, b: Any) -> tuple[int, dict[str, Any], str]:
        r = self.routes.get(g["name"])
        if r is None:
            return (*_error(404, "notFound", f"The resource 'routes/{g['name']}' was not found"), "")
        return 200, self._route_json(r), ""

    def _insert_route(self, g: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        name = str(b.get("name", ""))
        if name in self.routes:
            return (*_error(409, "alreadyExists", f"The resource 'routes/{name}' already exists"), name)
        hop = str(b.get("nextHopInstance", ""))
        m = re.search(r"zones/([^/]+)/instances/([^/]+)$", hop)
        if m is None or (m.group(1), m.group(2)) not in self.instances:
            return (*_error(400, "invalid", f"Invalid value for field 'resource.nextHopInstance': '{hop}'"), name)
        route = Route(name, str(b.get("destRange", "")), self.url(self.instances[(m.group(1), m.group(2))]),
                      int(b.get("priority", 1000)), list(b.get("tags", [])),
                      str(b.get("network", "default")).rsplit("/", 1)[-1])

        def effect() -> None:
            self.routes[name] = route

        o = self._operation("insert", "global", route.next_hop, effect)
        return 200, self._op_json(o), m.group(2)

    def _delete_route(self, g: dict[str, str], q: Any, b: Any) -> tuple[int, dict[str, Any], str]:
        name = g["name"]
        if name not in self.routes:
            return (*_error(404, "notFound", f"The resource 'routes/{name}' was not found"), "")

        holder = self.routes[name].next_hop.rsplit("/", 1)[-1]

        def effect() -> None:
            self.routes.pop(name, None)

        o = self._operation("delete", "global", name, effect)
        return 200, self._op_json(o), holder

    def _get_operation(self, g: dict[str, str], q: Any, b: Any) -> tuple[int, dict[str, Any], str]:
        o = self._ops.get(g["op"])
        if o is None:
            return (*_error(404, "notFound", f"The resource 'operations/{g['op']}' was not found"), "")
        return 200, self._op_json(o), ""

    # ---------- HTTP ----------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emu = self

        class Handler(JsonApiHandler):
            content_type = "application/json; charset=UTF-8"

            def serve(self, method: str) -> None:
                started = time.monotonic()
                parts = urlsplit(self.path)
                self.pause(emu.delays.get(_op_name(method, parts.path), 0.0))
                body = self.json_body()
                target = ""
                if parts.path == "/token" and method == "POST":
                    op, status = "token", 200
                    payload: dict[str, Any] = {"access_token": emu.issue_token(), "expires_in": 3600,
                                               "token_type": "Bearer"}
                else:
                    auth = self.headers.get("Authorization", "")
                    with emu.lock:
                        if not emu.authorized(auth.removeprefix("Bearer ")):
                            op = "auth"
                            status, payload = _error(401, "authError", "Request had invalid authentication "
                                                                       "credentials.")
                        elif body is None:
                            op = "bad_json"
                            status, payload = _error(400, "parseError", "Invalid JSON payload received.")
                        else:
                            op, status, payload, target = emu._route(method, parts.path, parse_qs(parts.query),
                                                                     body)
                self.answer(status, payload)
                with emu.lock:
                    emu.calls.append(ApiCall(op, method, parts.path, started, time.monotonic(), status, target))

        return Handler


_P = r"/compute/v1/projects/(?P<project>[^/]+)"
ROUTES = [("GET", re.compile(_P + r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)"), "get_instance"),
          ("GET", re.compile(_P + r"/zones/(?P<zone>[^/]+)/instances"), "list_instances"),
          ("PATCH", re.compile(_P + r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)/updateNetworkInterface"),
           "update_nic"),
          ("GET", re.compile(_P + r"/zones/(?P<zone>[^/]+)/operations/(?P<op>[^/]+)"), "get_operation"),
          ("GET", re.compile(_P + r"/global/operations/(?P<op>[^/]+)"), "get_operation"),
          ("GET", re.compile(_P + r"/global/routes/(?P<name>[^/]+)"), "get_route"),
          ("POST", re.compile(_P + r"/global/routes"), "insert_route"),
          ("DELETE", re.compile(_P + r"/global/routes/(?P<name>[^/]+)"), "delete_route")]


def _match(method: str, path: str) -> tuple[str, re.Match[str]] | None:
    return next(((op, m) for verb, pattern, op in ROUTES
                 if verb == method and (m := pattern.fullmatch(path)) is not None), None)


def _op_name(method: str, path: str) -> str:
    found = _match(method, path)
    return found[0] if found else ""


def _error(status: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN"),
                              "errors": [{"message": message, "domain": "global", "reason": reason}]}}


def service_account_key(emu: GceEmulator, path: str,
                        email: str = "cloudvip@cloudvip-lab.iam.gserviceaccount.com") -> str:
    """A service-account key file (a fresh RSA key, trusted by `emu`; its token endpoint the
    emulator's /token): google-auth's default chain finds it through GOOGLE_APPLICATION_CREDENTIALS."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    kid = os.urandom(8).hex()
    emu.keys[kid] = key.public_key()
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump({"type": "service_account", "project_id": PROJECT, "private_key_id": kid,
                   "private_key": pem, "client_email": email, "client_id": "1",
                   "token_uri": f"{emu.endpoint}/token"}, f)
    return path


@dataclass
class GceWorld:
    """One instance per lab node (same addresses) in one zone, an empty route table."""

    emulator: GceEmulator
    instances: list[Instance]

    def holders(self, mode: str, vip: str) -> list[str]:
        if mode == "alias_ip":
            return self.emulator.alias_holders(f"{vip}/32")
        target = self.emulator.route_target("cloudvip-" + vip.replace(".", "-"))
        return [target] if target else []


def build_world(nodes: list[tuple[str, str]], op_seconds: float = 0.0) -> GceWorld:
    """`nodes`: (address, MAC) per VM, named node1, node2 ..."""
    emu = GceEmulator(op_seconds)
    instances = [emu.add_instance(f"node{i + 1}", ip, mac, labels={"cloudvip-group": "lab"})
                 for i, (ip, mac) in enumerate(nodes)]
    return GceWorld(emu, instances)
