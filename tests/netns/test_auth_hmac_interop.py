"""auth_hmac on the wire between cloudvip and keepalived 2.4.3 (built by `make test`), in
namespaces: election, SIGKILL failover and priority-0 handover both ways with auth_hmac on; a
wrong key on either side is not accepted; keys rotate and the rollout runs receive-only ->
permissive -> enforce with reloads and no transition."""

from __future__ import annotations

import re
import signal
import time
from typing import Iterator

import pytest

from cloudvip import auth_state

from cloudvip_lab.daemons import Daemon

from ..keepalived_builds import KEEPALIVED24, needs_keepalived24
from .conftest import Cluster, needs_root, status

pytestmark = [needs_root, needs_keepalived24, pytest.mark.netns]
K1, K2 = "11" * 32, "22" * 32
WIRE = dict(version=3, advert=0.1)


@pytest.fixture(autouse=True)
def no_state_left(cluster: Cluster) -> Iterator[None]:
    """The agents keep their replay state in /var/lib/cloudvip: remove it with the test's configs."""
    yield
    for d in cluster.daemons:
        if d.kind == "cloudvip":
            auth_state.state_path(d.conf, "VI_1").unlink(missing_ok=True)


def auth_hmac(keys: dict[int, str], active: int, mode: str = "enforce") -> str:
    lines = "".join(f"        key {i} hex:{k}\n" for i, k in keys.items())
    return f"    auth_hmac {{\n{lines}        active_key {active}\n        mode {mode}\n    }}\n"


def start(cluster: Cluster, index: int, kind: str, priority: int, extra: str) -> Daemon:
    d = cluster.daemon(index, kind, binary=KEEPALIVED24, priority=priority, extra=extra, **WIRE)
    return d.start()


def reconfigure(d: Daemon, extra: str) -> None:
    text = d.conf.read_text()
    body = re.sub(r"    auth_hmac \{.*?\n    \}\n", "", text, flags=re.S)
    d.conf.write_text(body.replace("    virtual_ipaddress {", extra + "    virtual_ipaddress {", 1))
    d.signal(signal.SIGHUP)


@pytest.mark.parametrize("master_kind", ["cloudvip", "keepalived"])
def test_election_failover_and_handover_with_auth_hmac(cluster: Cluster, master_kind: str) -> None:
    backup_kind = "keepalived" if master_kind == "cloudvip" else "cloudvip"
    block = auth_hmac({1: K1}, 1)
    m = start(cluster, 0, master_kind, 100, block)
    b = start(cluster, 1, backup_kind, 90, block)
    assert cluster.wait_holder(m, 10), cluster.logs()
    time.sleep(1.5)  # the backup hears the master's signed adverts: it stays backup
    assert cluster.holders() == [m], cluster.logs()
    agent = m if master_kind == "cloudvip" else b
    counters = status(agent)["counters"]
    assert not [k for k in counters if k.startswith("drop_auth")], counters
    if agent is b:
        assert counters["adverts_received"] > 5
    m.kill()  # SIGKILL: the backup takes over after Master_Down_Interval
    assert cluster.wait_holder(b, 5), cluster.logs()
    m.drop_vip()
    m.start()  # comes back and preempts: it hears the other's signed adverts
    assert cluster.wait_holder(m, 5), cluster.logs()
    time.sleep(0.5)
    handed = time.monotonic()
    m.signal(signal.SIGTERM)  # priority 0, signed: the backup takes over at once (Skew_Time)
    took = cluster.wait_holder(b, 5)
    assert took is not None and took - handed < 1.0, cluster.logs()


@pytest.mark.parametrize("wrong_side", ["cloudvip", "keepalived"])
def test_a_wrong_key_on_either_side_is_not_accepted(cluster: Cluster, wrong_side: str) -> None:
    kinds = ("cloudvip", "keepalived")
    daemons = [start(cluster, i, kind, 100 - 10 * i, auth_hmac({1: K2 if kind == wrong_side else K1}, 1))
               for i, kind in enumerate(kinds)]
    agent, keepalived = daemons
    assert cluster.topo.wait_for(lambda: len(cluster.holders()) == 2, 10), cluster.logs()  # each hears nobody
    assert cluster.topo.wait_for(
        lambda: status(agent)["counters"].get("drop_auth_ext_invalid_hmac", 0) > 0, 5), cluster.logs()
    assert "invalid authentication HMAC" in keepalived.log


def test_rotation_and_rollout_without_a_transition(cluster: Cluster) -> None:
    a = start(cluster, 0, "cloudvip", 100, "")
    k = start(cluster, 1, "keepalived", 90, "")
    assert cluster.wait_holder(a, 10), cluster.logs()
    time.sleep(1.0)
    before = len(status(a)["transitions"])
    steps = [auth_hmac({1: K1}, 1, "receive-only"), auth_hmac({1: K1}, 1, "permissive"),
             auth_hmac({1: K1}, 1), auth_hmac({1: K1, 2: K2}, 1), auth_hmac({1: K1, 2: K2}, 2),
             auth_hmac({2: K2}, 2)]
    for step in steps:
        for d in (k, a):  # the backup first: it must accept what the master sends next
            reconfigure(d, step)
            time.sleep(0.7)
            assert cluster.holders() == [a], (step, cluster.logs())
    time.sleep(1.0)
    sa = status(a)
    assert len(sa["transitions"]) == before and sa["state"] == "MASTER", a.log
    assert not [c for c in sa["counters"] if c.startswith("drop_auth")], sa["counters"]
    assert cluster.holders() == [a], cluster.logs()
