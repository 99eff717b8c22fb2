"""The real HAProxy (Debian's) in a lab namespace, with a stats socket: for the tests and bench/."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .topology import Node, Topology

CONFIG = """global
    stats socket {sock} mode 600 level admin
defaults
    mode tcp
    timeout connect 200ms
    timeout client 1s
    timeout server 1s
frontend fe_web
    bind 127.0.0.1:18080
    default_backend be_web
backend be_web
    server s1 127.0.0.1:18081{server_opts}
"""


class Haproxy:
    def __init__(self, topo: Topology, node: Node, workdir: Path, server_opts: str = "") -> None:
        self.topo, self.node = topo, node
        self.sock, self.cfg = workdir / "admin.sock", workdir / "haproxy.cfg"
        self.cfg.write_text(CONFIG.format(sock=self.sock, server_opts=server_opts))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self.topo.exec_args(self.node, "haproxy", "-db", "-f", str(self.cfg)),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.topo.wait_for(self.sock.exists, 5) is None:
            self.stop()
            raise RuntimeError("haproxy did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None
