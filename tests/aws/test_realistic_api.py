"""The EC2 API as it is, not as an emulator on loopback is: reads that lag writes (eventual
consistency), HTTPS verified against a CA the SDK is told about, connections kept alive."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from cloudvip.provider import Holder, ProviderError
from cloudvip_lab import ec2_emulator
from cloudvip_providers.aws import AwsProvider
from cloudvip_lab.cloud_edge import ApiEdge, LabCa
from cloudvip_lab.ec2_emulator import writes
from cloudvip_lab.netns_services import imds_handler

from ..fake_host import build, run
from .conftest import REGION, Ec2World
from .test_aws_provider import conf, provider


@pytest.fixture
def lagging_reads() -> Iterator[None]:
    ec2_emulator.CONSISTENCY["window"] = 1.0
    try:
        yield
    finally:
        ec2_emulator.CONSISTENCY["window"] = 0.0


def test_the_emulator_answers_a_read_as_before_a_write_for_the_window(ec2: Ec2World, lagging_reads: None) -> None:
    assert ec2.vip_enis("198.51.100.100") == []
    ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[0], PrivateIpAddresses=["198.51.100.100"])
    assert ec2.vip_enis("198.51.100.100") == []  # the same read, right after the write: the old answer
    ec2_emulator._stale_until[0] = 0.0  # the window has passed
    assert ec2.vip_enis("198.51.100.100") == [ec2.enis[0]]


def test_a_read_lagging_our_write_is_neither_a_split_brain_nor_a_reason_to_write_again(
        ec2: Ec2World, lagging_reads: None, caplog: pytest.LogCaptureFixture) -> None:
    """node2 takes over from node1 (a peer): its verification reads node1 for about a second
    after its write. It waits that out: one write, no split brain, no error."""
    a, _ = provider(ec2, 0, peer="198.51.100.12")
    b, host_b = provider(ec2, 1, peer="198.51.100.11")

    async def go() -> None:
        await a.start()
        await b.start()
        await a.take()
        ec2_emulator._stale_until[0] = 0.0
        assert (await b.holder()).holder is Holder.PEER  # b knows node1 holds it: no read before its write
        with ec2_emulator._lock:
            ec2_emulator.CALLS.clear()  # the answers given so far stay: they are what lags
        assert await b.take() is True

    with caplog.at_level(logging.INFO):
        run(go())
    assert writes() == {ec2.enis[1]: 1}
    assert host_b.addresses == {"198.51.100.100"}
    assert "split brain" not in caplog.text
    assert "now points to" in caplog.text
    calls = [c.action for c in ec2_emulator.CALLS]
    assert calls[0] == "AssignPrivateIpAddresses"  # the write first: nothing read on the critical path
    assert calls.count("DescribeNetworkInterfaces") >= 2  # the stale read, then the one that shows ours


def test_the_sdk_verifies_the_endpoint_against_the_ca_it_is_given(
        ec2: Ec2World, ec2_server: ec2_emulator.Ec2Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS with the lab's CA: trusted only through AWS_CA_BUNDLE (verification is never off),
    and one TLS handshake for many calls (the connection stays open between them)."""
    ca = LabCa(tmp_path / "ca")
    edge = ApiEdge(ec2_server.port, ca=ca, idle_close=60)
    assert edge.front is not None

    def tls_provider() -> AwsProvider:
        a, _ = provider(ec2, 0)
        a.settings = dataclasses.replace(a.settings, endpoint=f"https://127.0.0.1:{edge.port}")
        return a

    async def take(p: AwsProvider, reads: int = 0) -> None:
        await p.start()
        for _ in range(reads):
            await p.holder()
        await p.take()

    try:
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
        with pytest.raises(ProviderError, match="(?i)certificate|ssl"):
            run(take(tls_provider()))
        assert writes() == {}

        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca.ca_file))
        before = edge.front.handshakes
        run(take(tls_provider(), reads=3))
        assert writes() == {ec2.enis[0]: 1}
        assert edge.front.handshakes - before == 1
    finally:
        edge.close()


def test_a_node_that_steps_down_while_its_claim_settles_gives_the_claim_up(
        ec2: Ec2World, lagging_reads: None, caplog: pytest.LogCaptureFixture) -> None:
    """Nodes starting together are all master for a moment: node2 claims, hears node1 and steps
    down while its reads still lag its write. Its take ends there (no claim: node1's stands),
    its host gives the address back, and no split brain is logged."""
    a, _ = provider(ec2, 0, peer="198.51.100.12")
    b, host_b = provider(ec2, 1, peer="198.51.100.11")
    wanted = {"b": True}
    b.ctx.wanted = lambda: wanted["b"]

    async def go() -> tuple[bool, float]:
        await a.start()
        await b.start()
        await a.take()
        ec2_emulator._stale_until[0] = 0.0
        await b.holder()
        started = time.monotonic()
        claim = asyncio.create_task(b.take())
        await asyncio.sleep(0.3)
        wanted["b"] = False  # node1's advert heard
        return await claim, time.monotonic() - started

    with caplog.at_level(logging.INFO):
        took, seconds = run(go())
    assert took is False and host_b.addresses == set()
    assert seconds < 0.9  # it stopped reading when it stepped down, not after the read lag
    assert "split brain" not in caplog.text


@contextlib.contextmanager
def imds_of(ec2: Ec2World, backend: Any, index: int, data_plane_done: bool) -> Iterator[str]:
    """IMDS for node `index` (FakeHost's MAC): its ENI's local-ipv4s from moto's state once the
    remapping is complete (`data_plane_done`), else only its primary address."""
    eni = ec2.enis[index]

    def local_ipv4s() -> list[str]:
        addrs = [str(a["PrivateIpAddress"]) for a in backend().enis[eni].private_ip_addresses]
        return addrs if data_plane_done else addrs[:1]

    ident = {"instance_id": ec2.instances[index], "mac": "02:00:00:00:00:01", "region": REGION, "eni": eni}
    server = ThreadingHTTPServer(("127.0.0.1", 0), imds_handler(lambda: ident, local_ipv4s))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("data_plane_done", [True, False])
def test_imds_confirms_our_secondary_ip_where_describe_still_lags(
        ec2: Ec2World, ec2_server: ec2_emulator.Ec2Server, lagging_reads: None, data_plane_done: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    """node2, which found itself through IMDS, takes over from node1. AWS's advice for a remapped
    secondary IP is to check local-ipv4s in the instance metadata: once it lists the VIP, the
    move is verified with no Describe (which still answers as before the write). While it does
    not, the Describes settle it as before."""
    a, _ = provider(ec2, 0, peer="198.51.100.12")
    with imds_of(ec2, ec2_server.ec2_backend, 1, data_plane_done) as imds:
        b, host_b = build(AwsProvider, conf(f"        mode secondary_ip\n        endpoint {ec2.endpoint}\n"
                                            f"        imds_endpoint {imds}", "198.51.100.11"))

        async def go() -> None:
            await a.start()
            await b.start()
            await a.take()
            ec2_emulator._stale_until[0] = 0.0
            assert (await b.holder()).holder is Holder.PEER
            with ec2_emulator._lock:
                ec2_emulator.CALLS.clear()
            assert await b.take() is True

        with caplog.at_level(logging.INFO):
            run(go())
    assert writes() == {ec2.enis[1]: 1}
    assert host_b.addresses == {"198.51.100.100"}
    assert "split brain" not in caplog.text and "now points to" in caplog.text
    calls = [c.action for c in ec2_emulator.CALLS]
    if data_plane_done:
        assert calls == ["AssignPrivateIpAddresses"]
    else:
        assert calls[0] == "AssignPrivateIpAddresses" and calls.count("DescribeNetworkInterfaces") >= 2
