"""The gcp provider against the local Compute Engine API, driven by the real google-cloud-compute
client: alias IP ranges and routes moved, verified, counted; fingerprints, operations,
throttling; the cloud block's checks. (The host side is a recording fake here.)"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import ThreadingHTTPServer
from typing import Iterator

import pytest

from cloudvip.config import loads
from cloudvip.config.diagnostics import Diagnostics
from cloudvip.doctor.findings import Status
from cloudvip.provider import Holder, ProviderError
from cloudvip_lab.gce_emulator import PROJECT, PROJECT_NUMBER, ZONE, GceWorld
from cloudvip_lab.netns_services import gce_metadata_handler, gce_metadata_paths
from cloudvip_providers.gcp import GcpProvider
from cloudvip_providers.gcp_settings import parse

from ..fake_host import FakeHost, build, doctor_findings, run
from .conftest import ADDRS, MACS

VIP, ROUTED = "198.51.100.100", "203.0.113.10"


def conf(index: int, endpoint: str, mode: str = "alias_ip", extra: str = "", peer: bool = True,
         vip: str | None = None, identity: bool = True) -> str:
    vip = vip or (VIP if mode == "alias_ip" else ROUTED)
    ident = (f"        project {PROJECT}\n        zone {ZONE}\n        instance node{index + 1}\n"
             + ("        network_interface nic0\n" if mode == "alias_ip" else "        network default\n")) \
        if identity else ""
    peers = f"    unicast_peer {{\n        {ADDRS[1 - index]}\n    }}\n" if peer else ""
    return (f"vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n{peers}"
            f"    virtual_ipaddress {{\n        {vip}/32\n    }}\n    cloud gcp {{\n        mode {mode}\n{ident}"
            f"        endpoint {endpoint}\n        poll_interval 0.05\n{extra}    }}\n}}\n")


def provider(gce: GceWorld, index: int, mode: str = "alias_ip", **kw: object) -> tuple[GcpProvider, FakeHost]:
    p, host = build(GcpProvider, conf(index, gce.emulator.endpoint, mode, **kw))  # type: ignore[arg-type]
    return p, host


def test_alias_ip_moves_with_one_remove_and_one_add_and_the_host_follows(gce: GceWorld) -> None:
    a, host_a = provider(gce, 0)
    b, host_b = provider(gce, 1)

    async def go() -> None:
        await a.start()
        await b.start()
        assert (await a.holder()).holder is Holder.NOBODY
        assert await a.take()
        assert gce.holders("alias_ip", VIP) == ["node1"]
        gce.emulator.calls.clear()
        assert await b.take()  # the failover
        assert gce.holders("alias_ip", VIP) == ["node2"]  # removed from node1 (its last range), added to node2
        assert (await a.holder()).holder is Holder.PEER
        await a.release()  # a backup only drops its host address

    run(go())
    assert gce.emulator.writes() == {"node1": 1, "node2": 1}  # two writes: remove, then add
    assert host_b.addresses == {VIP} and host_a.addresses == set()


def test_a_stale_fingerprint_is_read_again_and_the_write_retried(gce: GceWorld) -> None:
    a, _ = provider(gce, 0)
    gce.emulator.faults["update_nic"] = [(412, "conditionNotMet")]

    async def go() -> None:
        await a.start()
        assert await a.take()

    run(go())
    assert gce.holders("alias_ip", VIP) == ["node1"]
    assert [c.status for c in gce.emulator.calls if c.op == "update_nic"] == [412, 200]


def test_a_move_refused_while_a_peers_move_runs_is_retryable(gce: GceWorld) -> None:
    """Two masters at once (a partition): the address is reserved by the peer's running
    operation, and the refusal is retryable, so the mover tries again in a moment instead of at
    the next reconciliation (the peer's hand-over would otherwise move it a second time)."""
    gce.emulator.op_seconds = 0.5
    a, _ = provider(gce, 0)
    b, _ = provider(gce, 1)

    async def go() -> None:
        await a.start()
        await b.start()
        claim = asyncio.ensure_future(b.take())
        await asyncio.sleep(0.2)  # b's add runs
        with pytest.raises(ProviderError) as exc:
            await a.take()
        assert exc.value.retryable and "already being used" in str(exc.value)
        await claim

    run(go())


def test_operations_are_waited_for(gce: GceWorld) -> None:
    """An update takes effect when its zonal operation is DONE: take() returns after that."""
    gce.emulator.op_seconds = 0.4
    a, _ = provider(gce, 0)

    async def go() -> None:
        await a.start()
        assert await a.take()

    run(go())
    assert gce.holders("alias_ip", VIP) == ["node1"]
    assert sum(c.op == "get_operation" for c in gce.emulator.calls) >= 3  # polled every 0.05 s


def test_route_mode_inserts_then_deletes_and_inserts_with_priority_and_tags(gce: GceWorld) -> None:
    a, host_a = provider(gce, 0, "route", extra="        route_priority 50\n        route_tags lb web\n")
    b, _ = provider(gce, 1, "route")

    async def go() -> None:
        await a.start()
        await b.start()
        assert await a.take()
        assert gce.holders("route", ROUTED) == ["node1"]
        route = gce.emulator.routes["cloudvip-203-0-113-10"]
        assert (route.priority, route.tags, route.dest) == (50, ["lb", "web"], f"{ROUTED}/32")
        assert await b.take()
        assert gce.holders("route", ROUTED) == ["node2"]
        assert (await a.holder()).holder is Holder.PEER

    run(go())
    assert [c.op for c in gce.emulator.calls if c.op in ("insert_route", "delete_route")] == \
        ["insert_route", "delete_route", "insert_route"]
    assert host_a.addresses == {ROUTED}  # the routed address is carried by the host too


@pytest.mark.parametrize("status, reason, retryable", [(429, "rateLimitExceeded", True), (503, "backendError", True),
                                                       (500, "internalError", True), (403, "forbidden", False),
                                                       (400, "resourceNotReady", True), (400, "invalid", False)])
def test_errors_are_classified(gce: GceWorld, status: int, reason: str, retryable: bool) -> None:
    a, _ = provider(gce, 0)

    async def go() -> None:
        await a.start()
        gce.emulator.faults["list_instances"] = [(status, reason)]
        with pytest.raises(ProviderError) as exc:
            await a.holder()
        assert exc.value.retryable is retryable and str(status) in str(exc.value) and reason in str(exc.value)

    run(go())


def test_peers_found_by_label(gce: GceWorld) -> None:
    a, _ = provider(gce, 0, peer=False, extra="        peer_label cloudvip-group=lab\n")

    async def go() -> None:
        await a.start()
        assert [str(p) for p in await a.discover_peers()] == [ADDRS[1]]

    run(go())


@pytest.fixture
def metadata() -> Iterator[str]:
    nic = {"mac": MACS[0], "ip": ADDRS[0], "network": f"projects/{PROJECT_NUMBER}/networks/vpc1"}
    paths = gce_metadata_paths(PROJECT, PROJECT_NUMBER, ZONE, "node1", [nic])
    server = ThreadingHTTPServer(("127.0.0.1", 0), gce_metadata_handler(lambda: paths, lambda: "unused"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/computeMetadata/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_identity_from_the_metadata_server(gce: GceWorld, metadata: str) -> None:
    """Project, zone, instance and the NIC of the VRRP interface (by MAC) and its network."""
    p, _ = build(GcpProvider, conf(0, gce.emulator.endpoint, "route", identity=False,
                                      extra=f"        metadata_endpoint {metadata}\n"))

    async def go() -> None:
        await p.start()

    run(go())
    assert p.ident is not None
    assert (p.ident.project, p.ident.zone, p.ident.instance, p.ident.nic, p.ident.network) == \
        (PROJECT, ZONE, "node1", "nic0", "vpc1")
    assert p.me == f"{ZONE}/node1"


def test_the_cloud_block_is_checked_with_file_and_line() -> None:
    cfg = loads(conf(0, "http://127.0.0.1:9", extra="        zone Europe\n        route_priority 70000\n"
                                                    "        peer_label Bad=Label\n"), "keepalived.conf")
    diags = Diagnostics()
    assert parse(cfg.instances[0].cloud, cfg.instances[0], diags) is None  # type: ignore[arg-type]
    text = "\n".join(str(d) for d in diags.errors)
    assert "keepalived.conf:" in text and "zone 'Europe' is not valid (expected a zone like europe-west1-b)" in text
    assert "route_priority '70000'" in text and "peer_label 'Bad=Label'" in text


def test_doctor_starts_and_finds_the_peers(gce: GceWorld) -> None:
    a, _ = provider(gce, 0, peer=False, extra="        peer_label cloudvip-group=lab\n")
    findings = doctor_findings(a)
    assert [f.status for f in findings] == [Status.OK, Status.OK]
    assert findings[1].found == f"found {ADDRS[1]}"
    assert json.dumps(gce.emulator.writes()) == "{}"



def test_a_hand_over_waits_out_a_move_as_long_as_ours(gce: GceWorld) -> None:
    """A node that stepped down hands the VIP to the master only after the master's own move had
    time to land: twice our last move (here two operations of 0.8 s: remove from node2, add to
    node1), not two advert intervals (in the realistic lab: two more writes, a second move)."""
    gce.emulator.op_seconds = 0.8
    gce.instances[1].nics[0].alias = [f"{VIP}/32"]
    a, _ = provider(gce, 0)

    async def go() -> None:
        await a.start()
        assert await a.take()

    run(go())
    assert a.handover_grace() >= 3.2
