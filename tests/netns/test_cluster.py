"""Three cloudvip agents in namespaces: election, SIGKILL, SIGTERM, link down, packet loss."""

from __future__ import annotations

import signal
import time

import pytest

from cloudvip.state_machine import master_down_interval, skew_time

from .conftest import Cluster, needs_root

pytestmark = [needs_root, pytest.mark.netns, pytest.mark.parametrize("cluster", [3], indirect=True)]
PRIOS = (150, 100, 50)


def start_three(cluster: Cluster, **conf: object) -> list:
    agents = [cluster.daemon(i, "cloudvip", priority=p, **conf).start() for i, p in enumerate(PRIOS)]
    version, advert = conf.get("version", 2), conf.get("advert", 1)
    mdi = master_down_interval(int(version), PRIOS[0], round(float(advert) * 100))  # type: ignore[arg-type]
    assert cluster.wait_holder(agents[0], mdi + 5), cluster.logs()
    time.sleep(max(1.0, 3 * float(advert)))  # start-up transients (staggered starts) die down
    assert cluster.holders() == [agents[0]], cluster.logs()
    return agents


@pytest.mark.parametrize("version,advert", [(2, 1), (3, 0.1)])
def test_sigkill_of_the_master_moves_the_vip_to_the_next_priority(cluster: Cluster, version: int,
                                                                 advert: float) -> None:
    a = start_three(cluster, version=version, advert=advert)
    seen = len(a[2].log)
    a[0].kill()
    killed = time.monotonic()
    mdi = master_down_interval(version, PRIOS[1], round(advert * 100))
    moved = cluster.wait_holder(a[1], mdi + 3)
    assert moved is not None, cluster.logs()
    assert moved - killed <= mdi + 0.5  # never later than the RFC's Master_Down_Interval (+ scheduling)
    assert "BACKUP -> MASTER (master down: no advert for" in a[1].log
    assert not a[2].has_vip() and "-> MASTER" not in a[2].log[seen:]


def test_sigterm_hands_over_after_skew_time_not_master_down_interval(cluster: Cluster) -> None:
    a = start_three(cluster)
    time.sleep(1.2)
    termed = time.monotonic()
    assert a[0].term() == 0
    moved = cluster.wait_holder(a[1], 5)
    assert moved is not None, cluster.logs()
    assert moved - termed < skew_time(2, PRIOS[1], 100) + 1.0 < master_down_interval(2, PRIOS[1], 100)
    assert not a[0].has_vip()  # released on exit
    assert "resigned (priority 0)" in a[1].log
    assert "MASTER -> STOP (shutdown)" in a[0].log


def test_link_down_puts_the_master_in_fault_and_it_preempts_on_return(cluster: Cluster) -> None:
    a = start_three(cluster, version=3, advert=0.1)
    cluster.topo.set_link(a[0].node, False)
    assert cluster.topo.wait_for(lambda: a[1].has_vip() and not a[0].has_vip(), 3), cluster.logs()
    assert cluster.topo.wait_for(lambda: "MASTER -> FAULT (tracked interface:eth0 failed)" in a[0].log, 2)
    cluster.topo.set_link(a[0].node, True)
    assert cluster.wait_holder(a[0], 5), cluster.logs()
    assert "FAULT -> BACKUP" in a[0].log


def test_ten_percent_loss_causes_no_flap(cluster: Cluster) -> None:
    a = start_three(cluster)
    for d in a:  # 10% of every node's adverts lost (ARP spared: its own retries are not VRRP's business)
        cluster.topo.set_loss(d.node, 10, vrrp_only=True)
    before = [d.log.count(" -> ") for d in a]
    time.sleep(20)
    assert [d.log.count(" -> ") for d in a] == before, cluster.logs()
    assert cluster.holders() == [a[0]]


def test_config_reload_keeps_an_unchanged_master(cluster: Cluster) -> None:
    a = start_three(cluster)
    assert a[0].proc is not None
    a[0].proc.send_signal(signal.SIGHUP)
    assert cluster.topo.wait_for(lambda: "reload done: 1 kept" in a[0].log, 5), a[0].log
    time.sleep(4)  # longer than any Master_Down_Interval
    assert cluster.holders() == [a[0]]
    assert a[0].log.count(" -> ") == 2  # INIT -> BACKUP -> MASTER, nothing since

    good = a[0].conf.read_text()
    a[0].conf.write_text(good + "vrrp_instance VI_2 {\n    interface eth0\n    virtual_router_id 52\n"
                         "    priority 100\n    virtual_ipaddress {\n        198.51.100.101/24\n    }\n}\n")
    a[0].proc.send_signal(signal.SIGHUP)
    assert cluster.topo.wait_for(lambda: "reload done: 1 kept, 0 restarted or removed, 1 started" in a[0].log, 5)
    assert cluster.topo.wait_for(lambda: a[0].has_vip("198.51.100.101"), 6), a[0].log  # VI_2 (multicast) runs
    assert cluster.holders() == [a[0]] and a[0].log.count("VI_1: ") == 2

    a[0].conf.write_text(good.replace("virtual_router_id 51", "virtual_router_id 999"))  # keepalived drops it too
    a[0].proc.send_signal(signal.SIGHUP)
    assert cluster.topo.wait_for(lambda: "reload aborted: keeping the running configuration" in a[0].log, 5)
    assert a[0].alive and cluster.holders() == [a[0]]
