"""Local cloud services for agents in namespaces: each node namespace gets, on its own
127.0.0.1, a forwarder to the EC2 emulator (moto, on the host's 127.0.0.1) and a fake
IMDSv2 that tells that node who it is. Listening sockets are created inside the node's
namespace by a thread that enters it (setns is per thread); everything else runs here.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar

from .cloud_edge import delayed_pump, shut_down

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(ns: str) -> None:
    """Move the calling thread into namespace `ns` (setns is per thread)."""
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def listen_in_netns(ns: str, port: int) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:port inside namespace `ns`."""
    out: dict[str, Any] = {}

    def enter_and_bind() -> None:
        try:
            enter_netns(ns)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(64)
            out["sock"] = s
        except Exception as exc:  # reported to the caller
            out["error"] = exc

    t = threading.Thread(target=enter_and_bind)  # this thread ends in the namespace and dies there
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    sock: socket.socket = out["sock"]
    return sock


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        shut_down(dst, close=False)
        shut_down(src)  # each direction's pump closes what it read from


class Forwarder:
    """ns 127.0.0.1:port -> host 127.0.0.1:target_port, `rtt` seconds away: a connection costs
    one round trip before the first byte goes up, and every byte arrives one round trip late
    (the answers at once), so each request-response exchange costs one RTT."""

    def __init__(self, ns: str, port: int, target_port: int, rtt: float = 0.0) -> None:
        self.sock = listen_in_netns(ns, port)
        self.target_port, self.rtt = target_port, rtt
        self.paused = False  # the API unreachable from this namespace
        self.hanging = False  # the API accepts connections and never answers
        self._open: list[socket.socket] = []
        self.held: list[socket.socket] = []  # connections accepted while hanging
        threading.Thread(target=self._accept, daemon=True).start()

    def pause(self) -> None:
        """Make the API unreachable: cut open connections, refuse new ones until resume()."""
        self.paused = True
        self._cut(self._open)

    def hang(self) -> None:
        """Make the API hang: cut open connections; new ones are accepted, and never answered
        until resume()."""
        self.hanging = True
        self._cut(self._open)

    @staticmethod
    def _cut(sockets: list[socket.socket]) -> None:
        shut_down(*sockets, close=False)
        sockets.clear()

    def resume(self) -> None:
        self.paused = self.hanging = False
        self._cut(self.held)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.paused:
                client.close()
                continue
            if self.hanging:
                self.held.append(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        if self.rtt:
            time.sleep(self.rtt)  # the TCP handshake with a distant endpoint
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)  # the connect's timeout would end a kept-alive connection idle 5 s
        for s in (client, upstream):  # relay each segment at once (no Nagle delay on the hop)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open = [s for s in self._open if s.fileno() != -1] + [client, upstream]
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        if self.rtt:
            delayed_pump(client, upstream, self.rtt)
        else:
            _pump(client, upstream)

    def close(self) -> None:
        self.sock.close()


def imds_handler(identity: Callable[[], dict[str, str]],
                 local_ipv4s: Callable[[], list[str]] | None = None) -> type[BaseHTTPRequestHandler]:
    """IMDSv2: PUT /latest/api/token, then GETs with the token; GETs without one get 401
    (`Handler.tokens.clear()` expires the tokens given so far)."""
    tokens: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        tokens: ClassVar[set[str]]

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: str = "", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body.encode())

        def do_PUT(self) -> None:  # noqa: N802
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if self.path == "/latest/api/token" and ttl.isdigit() and 1 <= int(ttl) <= 21600:
                token = os.urandom(16).hex()
                tokens.add(token)
                self._send(200, token, {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
            else:
                self._send(400)

        def do_GET(self) -> None:  # noqa: N802
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens:
                self._send(401)
                return
            ident = identity()
            paths = {"/latest/meta-data/instance-id": ident["instance_id"],
                     "/latest/meta-data/mac": ident["mac"],
                     "/latest/meta-data/placement/region": ident["region"],
                     f"/latest/meta-data/network/interfaces/macs/{ident['mac']}/interface-id": ident["eni"],
                     "/latest/dynamic/instance-identity/document": json.dumps(ident)}
            if local_ipv4s is not None:
                paths[f"/latest/meta-data/network/interfaces/macs/{ident['mac']}/local-ipv4s"] = \
                    "\n".join(local_ipv4s())
            if self.path in paths:
                self._send(200, paths[self.path])
            else:
                self._send(404)

    Handler.tokens = tokens
    return Handler


class NetnsHttp:
    """An HTTP service on 127.0.0.1:port inside namespace `ns`."""

    def __init__(self, ns: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = listen_in_netns(ns, port)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeImds(NetnsHttp):
    def __init__(self, ns: str, port: int, identity: dict[str, str],
                 local_ipv4s: Callable[[], list[str]] | None = None) -> None:
        self.identity = identity
        super().__init__(ns, port, imds_handler(lambda: self.identity, local_ipv4s))


def hetzner_metadata_handler(paths: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    """Hetzner's metadata service: plain GETs under /hetzner/v1/metadata, no auth."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            body = paths.get(self.path)
            self.send_response(200 if body is not None else 404)
            data = (body or "not found").encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def gce_metadata_handler(paths: Callable[[], dict[str, str]],
                         token: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    """Compute Engine's metadata server: GETs under /computeMetadata/v1 with `Metadata-Flavor:
    Google` (403 without it), answered with that header too (google-auth's detection of a VM);
    the service account's token from `token` (the emulated API's)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if self.headers.get("Metadata-Flavor") != "Google":
                code, body = 403, "Missing Metadata-Flavor:Google header."
            elif path == "/":
                code, body = 200, "computeMetadata/\n"
            elif path == "/computeMetadata/v1/instance/service-accounts/default/token":
                code, body = 200, json.dumps({"access_token": token(), "expires_in": 3599, "token_type": "Bearer"})
            else:
                found = paths().get(path)
                code, body = (200, found) if found is not None else (404, "Not Found")
            data = body.encode()
            self.send_response(code)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", "application/json" if body.startswith(("{", "[")) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def gce_metadata_paths(project: str, project_number: str, zone: str, name: str, nics: list[dict[str, str]],
                       email: str = "cloudvip@cloudvip-lab.iam.gserviceaccount.com") -> dict[str, str]:
    """What the metadata server says about one VM (`nics`: mac, ip, network per interface)."""
    root = "/computeMetadata/v1"
    return {f"{root}/project/project-id": project, f"{root}/project/numeric-project-id": project_number,
            f"{root}/instance/zone": f"projects/{project_number}/zones/{zone}", f"{root}/instance/name": name,
            f"{root}/instance/network-interfaces/": json.dumps(nics),
            f"{root}/instance/service-accounts/default/": json.dumps(
                {"email": email, "aliases": ["default"], "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}),
            f"{root}/instance/service-accounts/default/email": email}


def azure_imds_handler(instance: Callable[[], dict[str, Any]],
                       token: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    """Azure's Instance Metadata Service: GET /metadata/instance?api-version=... and the managed
    identity's GET /metadata/identity/oauth2/token?resource=..., both only with `Metadata: true`
    (400 without it, as IMDS answers); the token from `token` (the emulated ARM's)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            path, _, query = self.path.partition("?")
            params = dict(p.partition("=")[::2] for p in query.split("&") if p)
            if self.headers.get("Metadata", "").lower() != "true":
                code, body = 400, {"error": "Bad request. Required metadata header not specified"}
            elif "api-version" not in params:
                code, body = 400, {"error": "Bad request. api-version was not specified in the request"}
            elif path == "/metadata/instance":
                code, body = 200, instance()
            elif path == "/metadata/identity/oauth2/token" and params.get("resource"):
                now = int(time.time())
                code, body = 200, {"access_token": token(), "client_id": "00000000-0000-0000-0000-00000000c1a5",
                                   "expires_in": "86399", "expires_on": str(now + 86399), "ext_expires_in": "86399",
                                   "not_before": str(now), "resource": params["resource"], "token_type": "Bearer"}
            else:
                code, body = 404, {"error": "Not found"}
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def azure_instance_metadata(subscription: str, group: str, name: str, location: str, mac: str, ip: str,
                            tags: dict[str, str]) -> dict[str, Any]:
    """What IMDS's /metadata/instance says about one VM with one NIC."""
    return {"compute": {"subscriptionId": subscription, "resourceGroupName": group, "name": name,
                        "location": location, "vmId": "00000000-0000-0000-0000-" + mac.replace(":", "").lower(),
                        "azEnvironment": "AzurePublicCloud", "osType": "Linux",
                        "tagsList": [{"name": k, "value": v} for k, v in tags.items()]},
            "network": {"interface": [{"macAddress": mac.replace(":", "").upper(),
                                       "ipv4": {"ipAddress": [{"privateIpAddress": ip, "publicIpAddress": ""}],
                                                "subnet": [{"address": ip.rsplit(".", 1)[0] + ".0", "prefix": "24"}]},
                                       "ipv6": {"ipAddress": []}}]}}
