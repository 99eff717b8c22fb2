"""The agent needs CAP_NET_RAW and CAP_NET_ADMIN, nothing else: with only those (root's other
capabilities dropped from every set), it elects and carries the VIP; without CAP_NET_RAW it
stops with a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cloudvip_lab.daemons import vrrp_conf
from cloudvip_lab.topology import Topology

from .conftest import needs_root

pytestmark = [needs_root]


def run_with_caps(topo: Topology, caps: str, conf: Path, log: Path) -> subprocess.Popen[bytes]:
    """`caps` like "+net_raw,+net_admin": the agent's only capabilities (bounding, inheritable,
    ambient), as systemd's CapabilityBoundingSet/AmbientCapabilities would give it."""
    setpriv = ["setpriv", f"--bounding-set=-all,{caps}", f"--inh-caps=-all,{caps}", f"--ambient-caps=-all,{caps}"]
    with open(log, "wb") as out:
        return subprocess.Popen(topo.exec_args(topo.nodes[0], *setpriv, sys.executable, "-m", "cloudvip", "run",
                                               "-f", str(conf), "--no-control"), stdout=out, stderr=out)


def test_net_raw_and_net_admin_are_enough_and_needed(tmp_path: Path) -> None:
    topo = Topology("cvp", 2).create()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        n1, n2 = topo.nodes
        conf = tmp_path / "keepalived.conf"
        conf.write_text(vrrp_conf(n1, [n2], priority=100, version=3, advert=0.1))
        log = tmp_path / "agent.log"
        procs.append(run_with_caps(topo, "+net_raw,+net_admin", conf, log))
        assert topo.wait_for(lambda: topo.has_address(n1, "198.51.100.100"), 10, 0.05), log.read_text()
        status = Path(f"/proc/{procs[0].pid}/status").read_text()
        eff = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff")), 16)
        assert eff == (1 << 13) | (1 << 12)  # CAP_NET_RAW and CAP_NET_ADMIN, nothing else
        procs[0].terminate()
        assert procs[0].wait(10) == 0
        assert not topo.has_address(n1, "198.51.100.100")  # released on exit, with the same two

        log2 = tmp_path / "agent-no-raw.log"
        procs.append(run_with_caps(topo, "+net_admin", conf, log2))
        assert procs[1].wait(15) != 0
        assert "Operation not permitted" in log2.read_text() or "permission" in log2.read_text().lower(), \
            log2.read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        topo.destroy()
