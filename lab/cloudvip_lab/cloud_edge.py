"""What stands between an agent and a real cloud API: distance and TLS.

- `LabCa`: a certificate authority made for one lab run, and a server certificate for
  127.0.0.1 signed by it. The SDKs trust it the way users point them at a private CA
  (`AWS_CA_BUNDLE`, `REQUESTS_CA_BUNDLE`): verification stays on, nothing is skipped.
- `TlsFront`: a TLS endpoint on the host's loopback in front of an emulator that speaks plain
  HTTP; it keeps connections alive (as the clouds' endpoints do) and closes one idle for
  `idle_close` seconds.
- `delayed_pump`: a one-way delay on a byte stream. The per-namespace forwarder applies the
  whole round-trip time on the way in, so each request-response costs one RTT, a TCP
  connection one more, a TLS 1.3 handshake one more: a cold call costs what it costs.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import queue
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any


class LabCa:
    """A CA and a 127.0.0.1 server certificate in `directory` (ca.pem, server.pem, server.key)."""

    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloudvip lab CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        server = (x509.CertificateBuilder()
                  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                  .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                  .not_valid_before(now - datetime.timedelta(minutes=5))
                  .not_valid_after(now + datetime.timedelta(days=2))
                  .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                              x509.DNSName("localhost")]), critical=False)
                  .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                  .sign(ca_key, hashes.SHA256()))
        pem = serialization.Encoding.PEM
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(pem))
        self.cert_file = directory / "server.pem"
        self.cert_file.write_bytes(server.public_bytes(pem))
        self.key_file = directory / "server.key"
        self.key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        self.ca_file.chmod(0o644)  # agents and scripts of other users read it
        directory.chmod(0o755)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_env(self) -> dict[str, str]:
        """The environment an SDK reads to trust this CA (botocore/awscli; requests/hcloud)."""
        return {"AWS_CA_BUNDLE": str(self.ca_file), "REQUESTS_CA_BUNDLE": str(self.ca_file)}


def shut_down(*socks: socket.socket, close: bool = True) -> None:
    """Shut both directions of each socket down (the peer sees the end at once), and close it."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if close:
            s.close()


def delayed_pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
    """Copy src to dst, each chunk `delay` seconds after it arrived (chunks keep their spacing:
    a stream is delayed, not slowed down). Ends both sockets when src ends."""
    chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def deliver() -> None:
        try:
            while True:
                due, data = chunks.get()
                if not data:
                    return
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            shut_down(src, dst)

    threading.Thread(target=deliver, daemon=True).start()
    try:
        while data := src.recv(65536):
            chunks.put((time.monotonic() + delay, data))
    except OSError:
        pass
    chunks.put((0.0, b""))


def _read_request(rfile: Any) -> bytes:
    """One HTTP/1.1 request (head and Content-Length body) as bytes; b"" at the end."""
    head = b""
    while (line := rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
        head += line
    if not head:
        return b""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + b"\r\n" + (rfile.read(length) if length else b"")


class TlsFront:
    """TLS on 127.0.0.1 (a free port) for a plain-HTTP emulator on 127.0.0.1:target_port."""

    def __init__(self, ca: LabCa, target_port: int, idle_close: float = 0.0) -> None:
        self.ctx, self.target_port, self.idle_close = ca.server_context(), target_port, idle_close
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0  # full TLS handshakes served: what a cold connection costs, counted
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            raw.settimeout(10)
            client = self.ctx.wrap_socket(raw, server_side=True)
        except OSError:  # ssl.SSLError included: a client that does not trust the CA
            raw.close()
            return
        with self._lock:
            self.handshakes += 1
        client.settimeout(self.idle_close or None)
        try:
            with client.makefile("rb") as rfile:
                while request := _read_request(rfile):
                    client.sendall(self._forward(request))
        except OSError:  # idle too long (a timeout), or the client went away
            pass
        finally:
            shut_down(client)

    def _forward(self, request: bytes) -> bytes:
        """One request to the emulator on a connection of its own (werkzeug, under moto, closes
        every connection after one answer); the answer re-framed for a kept-alive connection."""
        with socket.create_connection(("127.0.0.1", self.target_port), timeout=30) as upstream:
            upstream.sendall(request)
            answer = http.client.HTTPResponse(upstream)
            answer.begin()
            body = answer.read()
        headers = "".join(f"{k}: {v}\r\n" for k, v in answer.getheaders()
                          if k.lower() not in ("connection", "content-length", "transfer-encoding", "keep-alive"))
        return (f"HTTP/1.1 {answer.status} {answer.reason}\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
                .encode("latin-1") + body)

    def close(self) -> None:
        self.sock.close()


class ApiEdge:
    """An emulator's API as the nodes reach it under a profile: plain, or behind TLS; the
    per-node forwarders add the round trip. `scheme` goes into the agents' endpoints."""

    def __init__(self, emulator_port: int, rtt: float = 0.0, ca: LabCa | None = None,
                 idle_close: float = 0.0) -> None:
        self.rtt, self.ca = rtt, ca
        self.front = TlsFront(ca, emulator_port, idle_close) if ca is not None else None
        self.port = self.front.port if self.front is not None else emulator_port
        self.scheme = "https" if ca is not None else "http"

    def env(self) -> dict[str, str]:
        return self.ca.client_env() if self.ca is not None else {}

    def close(self) -> None:
        if self.front is not None:
            self.front.close()
