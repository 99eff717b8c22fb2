"""The running agent's control socket: `cloudvip status`, `takeover`, `release`.

One root-only unix socket per config (path derived from it, like the companion's), one JSON
request and one JSON answer per connection. takeover/release are operator overrides for
planned maintenance, tracked like any other tracked object (named `operator`), so they show
in the status and in the logs, and vanish on restart:
- takeover: priority +254 (effective 254): the node preempts a lower master (if it may preempt);
- release: FAULT: as master it sends priority 0 and the peer takes over at once; it stays out
  until the override is undone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .tracking import TrackState

if TYPE_CHECKING:
    from .instance import InstanceRuntime

log = logging.getLogger("cloudvip")
OPERATOR = "operator"
OVERRIDES = {"takeover": TrackState(delta=254), "release": TrackState(fault=True)}


def instance_status(rt: InstanceRuntime) -> dict[str, Any]:
    router, stats = rt.router, rt.mover.stats
    now = time.monotonic()
    return {
        "name": rt.name,
        "state": router.state.value,
        "priority": {"effective": router.priority, "base": router.params.priority,
                     "tracked": {name: t.describe() for name, t in sorted(router.tracks.items())}},
        "override": next((k for k, v in OVERRIDES.items() if router.tracks.get(OPERATOR) == v), None),
        "master": {"address": str(router.master_address) if router.master_address else None,
                   "priority": router.master_priority},
        "transitions": [{"at": t.at, "from": t.note.old.value, "to": t.note.new.value, "reason": t.note.reason}
                        for t in list(rt.transitions)[-10:]],
        "counters": dict(rt.counters),
        "interface_drops": dict(rt.channel.drops),  # packets no instance saw (undecodable, unknown VRID)
        "provider": {"name": rt.mover.provider.name, "holder": stats.holder,
                     "holding": rt.mover.actual,
                     "last_reconcile_ago": round(now - stats.last_reconcile, 1) if stats.last_reconcile else None,
                     "last_error": stats.last_error or None, "split_brain": stats.split_brain,
                     "reasserts": stats.reasserts, "calls": dict(stats.calls), "errors": dict(stats.errors)},
    }


def process_status() -> dict[str, Any]:
    """What an operator (or the soak bench) watches for leaks: asyncio tasks, open file
    descriptors, threads and resident memory of this agent. Called on the event loop."""
    rss_kib = None
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return {"pid": os.getpid(), "tasks": len(asyncio.all_tasks()), "fds": len(os.listdir("/proc/self/fd")),
            "threads": threading.active_count(), "rss_kib": rss_kib}


class ControlServer:
    def __init__(self, path: str, instances: dict[str, InstanceRuntime]) -> None:
        self.path, self.instances = path, instances
        #: instances waiting for their provider to start (the agent's Waiting records)
        self.waiting: dict[str, Any] = {}
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        if os.path.exists(self.path):
            try:
                _, w = await asyncio.wait_for(asyncio.open_unix_connection(self.path), 1.0)
                w.close()
                raise RuntimeError(f"another agent already listens on {self.path} (same config?)")
            except (OSError, TimeoutError):
                os.unlink(self.path)  # left behind by an agent that died
        old = os.umask(0o177)  # root-only from the start: takeover/release move the VIP
        try:
            self._server = await asyncio.start_unix_server(self._client, path=self.path)
        finally:
            os.umask(old)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, "process": process_status(),
                    "instances": [instance_status(rt) for rt in self.instances.values()],
                    "waiting": [w.status() for w in self.waiting.values()]}
        if cmd in OVERRIDES or cmd == "undo":
            rt = self.instances.get(str(request.get("instance")))
            if rt is None:
                return {"ok": False, "error": f"no instance {request.get('instance')!r} "
                                              f"(running: {', '.join(self.instances) or 'none'})"}
            state = OVERRIDES.get(str(cmd), TrackState())
            log.warning("%s: operator %s", rt.name, cmd if cmd != "undo" else "override undone")
            rt.track(OPERATOR, state)
            return {"ok": True, "instance": instance_status(rt)}
        return {"ok": False, "error": f"unknown command {cmd!r} (status, takeover, release, undo)"}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 2.0)
            try:
                request = json.loads(line)
                reply = self.answer(request if isinstance(request, dict) else {})
            except ValueError:
                reply = {"ok": False, "error": "the request is not JSON"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


def request(path: str, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request to a running agent (blocking; for the CLI)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
