"""systemd's service protocol (sd_notify): READY/RELOADING/STOPPING/STATUS, and the watchdog
pinged from the event loop itself, so a wedged loop stops the pings and systemd restarts us.

The protocol is one datagram per message to $NOTIFY_SOCKET (an abstract socket when it starts
with '@'); without that variable (not run by systemd) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger("cloudvip")


class ServiceManager:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and ours else 0.0
        self._task: asyncio.Task[None] | None = None

    def notify(self, *fields: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:  # never fatal: systemd may be restarting
            log.debug("sd_notify %s: %s", fields, exc)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")
        if self.watchdog and self._task is None:
            self._task = asyncio.create_task(self._ping(), name="watchdog")

    def reloading(self) -> None:
        self.notify("RELOADING=1", "STATUS=reloading")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping: handing over")
        if self._task is not None:
            self._task.cancel()

    async def _ping(self) -> None:
        """Twice per watchdog period, from the loop: if the loop hangs, the pings stop."""
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog / 2)
