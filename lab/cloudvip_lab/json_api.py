"""The HTTP side the emulated cloud APIs share: a keep-alive handler that hands every verb to
`serve(method)`, reads the request's JSON body and writes a JSON answer in one segment."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterable, Protocol


class LongRunning(Protocol):
    """A write the cloud carries out over time (a Hetzner action, a GCP or ARM operation)."""
    due: float
    effect: Callable[[], None] | None
    status: str


def finish_due(writes: Iterable[LongRunning], running: str, finished: str) -> None:
    """Each write still `running` whose time has come takes effect and becomes `finished`."""
    now = time.monotonic()
    for w in writes:
        if w.status == running and w.due <= now:
            if w.effect is not None:
                w.effect()
            w.status = finished


class JsonApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one segment per answer, sent at once: headers and body written separately would meet the
    # client's delayed ACK (Nagle) and add ~40 ms to every request
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    content_type = "application/json"

    def log_message(self, *args: object) -> None:
        pass

    def serve(self, method: str) -> None:
        raise NotImplementedError

    def pause(self, seconds: float) -> None:
        """A slow API: the request takes this long (outside any lock: others go on meanwhile)."""
        if seconds:
            time.sleep(seconds)

    def json_body(self) -> dict[str, Any] | None:
        """The request's JSON object ({} when empty; None when it is not a JSON object)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def answer(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.serve("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self.serve("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self.serve("DELETE")
