"""The agent under systemd's protocol, in a namespace: READY only once its sockets and
providers are up (the VIP already being elected is not required), watchdog pings, RELOADING
and READY around a SIGHUP, STOPPING on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cloudvip_lab.daemons import vrrp_conf
from cloudvip_lab.topology import Topology

from ..unit.test_service import Listener
from .conftest import needs_root

pytestmark = [needs_root]


def test_agent_speaks_sd_notify(tmp_path: Path) -> None:
    listener = Listener(tmp_path / "notify")
    topo = Topology("cvs", 2).create()
    proc: subprocess.Popen[bytes] | None = None
    try:
        n1, n2 = topo.nodes
        conf = tmp_path / "keepalived.conf"
        conf.write_text(vrrp_conf(n1, [n2], priority=100, version=3, advert=0.1))
        env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="400000")
        log = open(tmp_path / "log", "wb")
        started = time.monotonic()
        proc = subprocess.Popen(topo.exec_args(n1, sys.executable, "-m", "cloudvip", "run", "-f", str(conf)),
                                env=env, stdout=log, stderr=log)
        assert topo.wait_for(lambda: any(m.startswith("READY=1") for _, m in listener.messages), 10, 0.02), \
            (tmp_path / "log").read_text()
        time.sleep(0.6)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        msgs = listener.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        topo.destroy()
    texts = [m.split("\n")[0] for _, m in msgs]
    ready = texts.index("READY=1")
    assert "cloudvip running 1 instance(s)" in (tmp_path / "log").read_text()
    assert texts[ready + 1:].count("WATCHDOG=1") >= 3  # every 0.2 s
    reload_at = texts.index("RELOADING=1")
    assert reload_at > ready and "READY=1" in texts[reload_at + 1:]
    assert texts[-1] == "STOPPING=1"
    assert msgs[ready][0] - started < 10
