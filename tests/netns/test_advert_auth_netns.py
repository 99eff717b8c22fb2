"""auth_hmac between cloudvip agents in namespaces, through the deprecated auth_key_file: a peer
with the wrong key is ignored and counted; keys rotate with reloads and no failover."""

from __future__ import annotations

import signal
import time
from ipaddress import ip_address
from pathlib import Path

from cloudvip import auth_state
from cloudvip_lab.daemons import Daemon, instance_block
from cloudvip_lab.topology import Topology

from .conftest import needs_root, status

pytestmark = [needs_root]
K1, K2, K3 = "11" * 32, "22" * 32, "33" * 32


def write_keys(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def test_wrong_key_ignored_and_rotation_without_failover(tmp_path: Path) -> None:
    topo = Topology("cva", 3).create()
    daemons: list[Daemon] = []
    try:
        files = [tmp_path / f"{n.name}.keys" for n in topo.nodes]
        for path, key in zip(files, (K1, K1, K3), strict=True):  # node 3 has the wrong key
            write_keys(path, f"1 {key}\n")
        for node, prio, keyfile in zip(topo.nodes, (100, 90, 80), files, strict=True):
            peers = [n for n in topo.nodes if n is not node]
            conf = f"global_defs {{\n    router_id {node.name}\n}}\n\n" + instance_block(
                node, peers, priority=prio, version=3, advert=0.1, extra=f"    auth_key_file {keyfile}\n")
            daemons.append(Daemon(topo, node, "cloudvip", conf, tmp_path).start())
        a, b, c = daemons
        assert topo.wait_for(lambda: a.has_vip() and not b.has_vip(), 10, 0.05), a.log + b.log
        time.sleep(1.0)
        sa, sb, sc = status(a), status(b), status(c)
        assert sb["state"] == "BACKUP" and sb["master"]["address"] == str(topo.nodes[0].ip)
        for s in (sa, sb):
            assert s["counters"].get("drop_auth_ext_invalid_hmac", 0) > 0, s["counters"]
        assert sc["state"] == "MASTER"  # it hears no authentic advert: alone, it elects itself
        assert sa["state"] == "MASTER" and "auth ext invalid hmac" in a.log
        c.kill()

        # rotate K1 -> K2 on a and b: accept both, sign with the new, drop the old; no failover
        before = (len(status(a)["transitions"]), len(status(b)["transitions"]))
        drops_before = status(b)["counters"].get("drop_auth_ext_invalid_hmac", 0)
        for step in (f"1 {K1}\n2 {K2}\n", f"2 {K2}\n1 {K1}\n", f"2 {K2}\n"):
            for d, path in ((a, files[0]), (b, files[1])):
                write_keys(path, step)
                d.signal(signal.SIGHUP)
                time.sleep(0.5)
            assert a.has_vip() and not b.has_vip()
        time.sleep(0.5)
        sa, sb = status(a), status(b)
        assert (len(sa["transitions"]), len(sb["transitions"])) == before, (a.log, b.log)
        assert sb["master"]["address"] == str(topo.nodes[0].ip)
        assert sb["counters"].get("drop_auth_ext_invalid_hmac", 0) == drops_before  # nothing of a's was refused
        # a signs with key 2 now: a node that knows only key 1 refuses its adverts
        write_keys(files[1], f"1 {K1}\n")
        b.signal(signal.SIGHUP)
        assert topo.wait_for(lambda: status(b)["counters"].get("drop_auth_ext_unknown_key", 0) > 0, 5, 0.2), b.log
        # the replay state survives a restart: the master's last sent counter, and the last counter
        # the backup accepted from it, are in their root-only state files (saved at shutdown)
        assert a.term() == 0 and b.term() == 0
        sent, _ = auth_state.load(auth_state.state_path(a.conf, "VI_1"))
        _, heard = auth_state.load(auth_state.state_path(b.conf, "VI_1"))
        assert sent > 0 and 0 < heard[ip_address(str(topo.nodes[0].ip))] <= sent
    finally:
        for d in daemons:
            if d.alive:
                d.kill()
            auth_state.state_path(d.conf, "VI_1").unlink(missing_ok=True)
        topo.destroy()
