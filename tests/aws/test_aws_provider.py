"""The aws provider against emulated EC2: who holds the VIP, exactly-once verified moves,
error classification. (The host side is a recording fake here; the namespace tests run it for real.)"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cloudvip.config import loads
from cloudvip.config.diagnostics import Diagnostics
from cloudvip.provider import Holder, ProviderContext, ProviderError, check_providers
from cloudvip_providers.aws import AwsProvider, classify
from cloudvip_providers.aws_settings import parse

from cloudvip_lab.ec2_emulator import writes

from ..fake_host import FakeHost, build, run
from .conftest import REGION, Ec2World

VIP = "198.51.100.100"


def conf(cloud: str, peer: str | None = None) -> str:
    peers = f"    unicast_peer {{\n        {peer}\n    }}\n" if peer else ""
    return f"""vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
{peers}    virtual_ipaddress {{
        {VIP}/24
    }}
    cloud aws {{
{cloud}
    }}
}}
"""


def provider(ec2: Ec2World, index: int, peer: str | None = None) -> tuple[AwsProvider, FakeHost]:
    cloud = (f"        mode secondary_ip\n        instance_id {ec2.instances[index]}\n        eni {ec2.enis[index]}\n"
             f"        region {REGION}\n        endpoint {ec2.endpoint}")
    return build(AwsProvider, conf(cloud, peer))


def test_take_moves_the_vip_between_enis_and_verifies(ec2: Ec2World) -> None:
    a, host_a = provider(ec2, 0)
    b, host_b = provider(ec2, 1)

    async def go() -> None:
        await a.start()
        await b.start()
        assert (await a.holder()).holder is Holder.NOBODY
        await a.take()
        assert (await a.holder()).holder is Holder.SELF
        assert (await b.holder()).holder is Holder.OTHER
        await b.take()  # the failover: one call takes it from a's ENI
        assert (await b.holder()).holder is Holder.SELF
        assert (await a.holder()).holder is Holder.OTHER
        await a.release()  # a backup only drops its host address, never touches the cloud
        assert (await b.holder()).holder is Holder.SELF

    run(go())
    assert host_b.addresses == {VIP} and host_a.addresses == set()


def test_a_peer_holding_the_vip_is_told_from_a_stranger(ec2: Ec2World) -> None:
    a, _ = provider(ec2, 0, peer="198.51.100.12")  # node 1 is a's VRRP peer
    b, _ = provider(ec2, 1)

    async def go() -> None:
        await a.start()
        await b.start()
        await b.take()
        info = await a.holder()
        assert info.holder is Holder.PEER and "198.51.100.12" in info.detail
        lone, _ = provider(ec2, 0)  # without the peer configured, the same holder is a stranger
        await lone.start()
        assert (await lone.holder()).holder is Holder.OTHER

    run(go())


def test_take_when_already_holding_makes_no_api_write(ec2: Ec2World) -> None:
    a, _ = provider(ec2, 0)
    calls: list[str] = []

    async def go() -> None:
        await a.start()
        await a.take()
        original = a._call

        async def counting(op: str, **kw: Any) -> Any:
            calls.append(op)
            return await original(op, **kw)
        a._call = counting  # type: ignore[method-assign]
        await a.take()

    run(go())
    assert calls == ["describe_network_interfaces"]


def test_a_node_no_longer_master_makes_no_claim(ec2: Ec2World) -> None:
    a, host_a = provider(ec2, 0)
    a.ctx.wanted = lambda: False  # stepped down while reading who holds the VIP

    async def go() -> None:
        await a.start()
        await a.take()
        assert (await a.holder()).holder is Holder.NOBODY

    run(go())
    assert writes() == {} and host_a.addresses == set()


def test_errors_are_classified() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                           "AssignPrivateIpAddresses")

    assert classify(client_error("RequestLimitExceeded", 503)).retryable
    assert classify(client_error("InternalError", 500)).retryable
    assert classify(EndpointConnectionError(endpoint_url="http://x")).retryable
    assert not classify(client_error("UnauthorizedOperation", 403)).retryable
    assert not classify(client_error("InvalidNetworkInterfaceID.NotFound", 400)).retryable


@pytest.mark.parametrize("cloud,message", [
    ("mode teleport", "k.conf:8: cloud aws: mode 'teleport' is not valid"),
    ("mode elastic_ip", "k.conf:7: cloud aws: mode elastic_ip needs allocation_id"),
    ("mode route_table\n route_tables rtb-x", "route_tables rtb-x not valid"),
    ("mode secondary_ip\n eni i-123", "cloud aws: eni 'i-123' is not valid"),
    ("mode secondary_ip\n reconcile_interval 0", "reconcile_interval '0' is not valid"),
    ("mode secondary_ip\n operation_timeout 1", "operation_timeout '1' is not valid (expected seconds, 5..600)"),
    ("", "k.conf:7: cloud aws: needs a mode"),
])
def test_cloud_block_errors(cloud: str, message: str) -> None:
    inst = loads(conf(cloud), "k.conf").instances[0]
    diags = Diagnostics()
    assert inst.cloud is not None
    assert parse(inst.cloud, inst, diags) is None
    assert any(str(d).startswith(message) or message in str(d) for d in diags.errors), diags.items
    assert any(message in str(d) for d in check_providers((inst,)))


def test_missing_identity_without_imds_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    inst = loads(conf("        mode secondary_ip")).instances[0]
    p = AwsProvider(ProviderContext(inst, loads(conf("        mode secondary_ip")).global_defs,
                                    FakeHost(), logging.getLogger("t")))  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match="instance metadata"):
        run(p.start())


def mode_provider(ec2: Ec2World, index: int, extra: str) -> AwsProvider:
    cloud = (f"        instance_id {ec2.instances[index]}\n        eni {ec2.enis[index]}\n"
             f"        region {REGION}\n        endpoint {ec2.endpoint}\n{extra}")
    return build(AwsProvider, conf(cloud))[0]


def test_elastic_ip_mode(ec2: Ec2World) -> None:
    alloc = ec2.allocation_id
    a = mode_provider(ec2, 0, f"        mode elastic_ip\n        allocation_id {alloc}")
    b = mode_provider(ec2, 1, f"        mode elastic_ip\n        allocation_id {alloc}")

    async def go() -> None:
        await a.start()
        await b.start()
        assert (await a.holder()).holder is Holder.NOBODY
        await a.take()
        await b.take()
        assert (await b.holder()).holder is Holder.SELF and (await a.holder()).holder is Holder.OTHER

    run(go())
    addr = ec2.client.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    assert addr["NetworkInterfaceId"] == ec2.enis[1]


def test_route_table_mode_replaces_or_creates_the_route(ec2: Ec2World) -> None:
    rtb = ec2.route_table
    a = mode_provider(ec2, 0, f"        mode route_table\n        route_tables {rtb}")
    b = mode_provider(ec2, 1, f"        mode route_table\n        route_tables {rtb}")

    async def go() -> None:
        await a.start()
        await b.start()
        await a.take()  # no route yet: CreateRoute
        await b.take()  # ReplaceRoute
        assert (await b.holder()).holder is Holder.SELF and (await a.holder()).holder is Holder.OTHER

    run(go())
    routes = ec2.client.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    assert [r["NetworkInterfaceId"] for r in routes if r.get("DestinationCidrBlock") == f"{VIP}/32"] == [ec2.enis[1]]


def test_a_route_created_by_a_racing_node_is_replaced_at_once(ec2: Ec2World) -> None:
    """Both nodes read a table without the route; the other creates it first: our CreateRoute
    fails with RouteAlreadyExists and we replace it there and then (not a failed move)."""
    rtb = ec2.route_table
    b = mode_provider(ec2, 1, f"        mode route_table\n        route_tables {rtb}")
    real_call = b._call

    async def racing(op: str, **kwargs: Any) -> dict[str, Any]:
        if op == "create_route":
            ec2.client.create_route(RouteTableId=rtb, DestinationCidrBlock=f"{VIP}/32",
                                    NetworkInterfaceId=ec2.enis[0])
        return await real_call(op, **kwargs)

    async def go() -> None:
        await b.start()
        b._call = racing  # type: ignore[method-assign]
        await b.take()
        assert (await b.holder()).holder is Holder.SELF

    run(go())
    routes = ec2.client.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    assert [r["NetworkInterfaceId"] for r in routes if r.get("DestinationCidrBlock") == f"{VIP}/32"] == [ec2.enis[1]]


def test_a_node_that_stepped_down_hands_the_vip_to_the_master(ec2: Ec2World) -> None:
    from ipaddress import IPv4Address

    a, _ = provider(ec2, 0, peer="198.51.100.12")
    b, _ = provider(ec2, 1, peer="198.51.100.11")

    async def go() -> None:
        await a.start()
        await b.start()
        await b.take()  # b claimed during a partition
        await b.yield_to(IPv4Address("198.51.100.11"))  # b heard a and stepped down
        assert (await a.holder()).holder is Holder.SELF
        await b.yield_to(IPv4Address("198.51.100.11"))  # no longer ours: nothing to write
        assert (await a.holder()).holder is Holder.SELF

    run(go())


def test_peer_discovery_by_tag(ec2: Ec2World) -> None:
    ec2.client.create_tags(Resources=ec2.instances, Tags=[{"Key": "cloudvip:group", "Value": "web"}])
    stranger = ec2.client.run_instances(ImageId=ec2.client.describe_images()["Images"][0]["ImageId"], MinCount=1,
                                        MaxCount=1, SubnetId=ec2.subnet, PrivateIpAddress="198.51.100.13")
    assert stranger["Instances"]  # running but untagged: not a peer
    a = mode_provider(ec2, 0, "        mode secondary_ip\n        peer_tag cloudvip:group=web")

    async def go() -> list[str]:
        await a.start()
        return [str(p) for p in await a.discover_peers()]

    assert run(go()) == ["198.51.100.12"]
    assert a.peer_refresh == 60.0


def test_a_bug_in_a_provider_is_surfaced_not_retried_as_the_apis_fault(ec2: Ec2World,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A programming error in our own code (an attribute our code reads is not there) is logged
    with its traceback and counted, and the move is not retried in a loop as an API error; an
    answer we cannot read (a null field) stays the API's fault, retryable."""
    import asyncio
    from types import SimpleNamespace

    from cloudvip.vip_mover import VipMover

    a, _ = provider(ec2, 0)

    async def go() -> VipMover:
        await a.start()
        a.settings = SimpleNamespace(peer_tag=None)  # type: ignore[assignment]  # our code reads .mode
        mover = VipMover("VI_1", a, logging.getLogger("cloudvip.test"), backoff_max=0.05)
        mover.start()
        mover.want(True)
        await asyncio.sleep(0.5)
        await mover.stop()
        return mover

    caplog.set_level(logging.ERROR, logger="cloudvip.test")
    mover = run(go())
    assert mover.stats.calls["take"] == 1 and mover.stats.errors["bug"] == 1  # once, not in a loop
    assert "take failed: a bug in cloudvip, not an API error" in caplog.text and "AttributeError" in caplog.text
    assert caplog.records[-1].exc_info is not None  # with its traceback
    assert "unexpected answer from the API" not in caplog.text


def test_a_null_or_a_missing_field_in_an_answer_is_the_apis_fault() -> None:
    from cloudvip_providers.cloud import a_bug

    def raised(fn: Any) -> BaseException:
        try:
            fn()
        except Exception as exc:
            return exc
        raise AssertionError("no exception")

    answer: dict[str, Any] = {"NetworkInterfaces": None, "Server": None}
    assert not a_bug(raised(lambda: answer["Server"].id))  # a null field: the answer's
    assert not a_bug(raised(lambda: answer["Missing"]))
    assert not a_bug(raised(lambda: len(answer["NetworkInterfaces"])))
