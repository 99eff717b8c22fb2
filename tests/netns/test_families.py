"""Multicast (224.0.0.18 / ff02::12) and IPv6, between cloudvip agents and with keepalived."""

from __future__ import annotations

import time

import pytest

from cloudvip_lab.daemons import VIP, VIP6, Daemon

from .conftest import Cluster, needs_root, require

pytestmark = [needs_root, pytest.mark.netns]

CASES = [pytest.param(dict(family=4, multicast=True, version=2), VIP, id="ipv4-multicast-v2"),
         pytest.param(dict(family=6, multicast=False, version=3), VIP6, id="ipv6-unicast-v3"),
         pytest.param(dict(family=6, multicast=True, version=3), VIP6, id="ipv6-multicast-v3")]


def only_holder(cluster: Cluster, daemon: Daemon, vip: str, timeout: float) -> bool:
    def ok() -> bool:
        return [d for d in cluster.daemons if d.alive and d.has_vip(vip)] == [daemon]
    return cluster.topo.wait_for(ok, timeout) is not None


@pytest.mark.parametrize("conf,vip", CASES)
@pytest.mark.parametrize("kinds", [("cloudvip", "cloudvip"), ("keepalived", "cloudvip"), ("cloudvip", "keepalived")],
                         ids=lambda k: "-".join(k))
def test_election_and_failover(cluster: Cluster, conf: dict, vip: str, kinds: tuple[str, str]) -> None:
    require(*kinds)
    backup = cluster.daemon(1, kinds[1], priority=90, advert=0.1 if conf["version"] == 3 else 1, **conf).start()
    master = cluster.daemon(0, kinds[0], priority=100, advert=0.1 if conf["version"] == 3 else 1, **conf).start()
    assert only_holder(cluster, master, vip, 8), cluster.logs()
    time.sleep(1)
    assert only_holder(cluster, master, vip, 0.1), cluster.logs()
    master.kill()
    assert only_holder(cluster, backup, vip, 6), cluster.logs()
