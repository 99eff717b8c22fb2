"""The azure provider against the local ARM, driven by the real azure-mgmt-network client over
TLS with a managed identity from the fake IMDS: routes and IP configurations moved, verified,
counted; ETags, long-running operations (Azure-AsyncOperation and Location), throttling; the
cloud block's checks. (The host side is a recording fake here.)"""

from __future__ import annotations

import asyncio
import logging

import pytest

from cloudvip.config import loads
from cloudvip.config.diagnostics import Diagnostics
from cloudvip.provider import Holder, ProviderError
from cloudvip_lab.arm_emulator import GROUP, SUBSCRIPTION
from cloudvip_providers.azure import AzureProvider
from cloudvip_providers.azure_settings import parse

from ..fake_host import FakeHost, build, run
from .conftest import ADDRS, Arm

VIP = "198.51.100.100"


def conf(index: int, arm: Arm, mode: str = "route_table", extra: str = "", peer: bool = True,
         identity: bool = True) -> str:
    ident = (f"        subscription_id {SUBSCRIPTION}\n        resource_group {GROUP}\n"
             f"        vm_name node{index + 1}\n        network_interface node{index + 1}-nic\n") if identity else ""
    table = f"        route_tables {arm.world.table}\n" if mode == "route_table" else ""
    peers = f"    unicast_peer {{\n        {ADDRS[1 - index]}\n    }}\n" if peer else ""
    return (f"vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n{peers}"
            f"    virtual_ipaddress {{\n        {VIP}/32\n    }}\n    cloud azure {{\n"
            f"        mode {mode}\n{ident}{table}"
            f"        endpoint {arm.endpoint}\n        imds_endpoint {arm.imds}\n        poll_interval 0.05\n"
            f"{extra}    }}\n}}\n")


def provider(arm: Arm, index: int, mode: str = "route_table", **kw: object) -> tuple[AzureProvider, FakeHost]:
    return build(AzureProvider, conf(index, arm, mode, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("lro", ["Azure-AsyncOperation", "Location"])
def test_route_table_points_the_route_to_the_master_and_the_host_follows(arm: Arm, lro: str) -> None:
    arm.world.emulator.lro = lro
    arm.world.emulator.op_seconds = 0.3  # long-running: polled until it ends
    a, host_a = provider(arm, 0)
    b, host_b = provider(arm, 1)

    async def go() -> None:
        await a.start()
        await b.start()
        assert (await a.holder()).holder is Holder.NOBODY
        assert await a.take()
        assert arm.world.holders("route_table", VIP) == [ADDRS[0]]
        assert await b.take()  # the failover: one write
        assert arm.world.holders("route_table", VIP) == [ADDRS[1]]
        assert (await a.holder()).holder is Holder.PEER
        await a.release()

    run(go())
    assert arm.world.emulator.writes() == {ADDRS[0]: 1, ADDRS[1]: 1}
    assert host_b.addresses == {VIP} and host_a.addresses == set()
    polls = [c for c in arm.world.emulator.calls if c.op.startswith("operation_")]
    assert polls and {c.op for c in polls} == {"operation_status" if lro == "Azure-AsyncOperation"
                                                else "operation_result"}


def test_ip_config_moves_with_one_remove_and_one_add(arm: Arm) -> None:
    a, host_a = provider(arm, 0, "ip_config")
    b, host_b = provider(arm, 1, "ip_config")

    async def go() -> None:
        await a.start()
        await b.start()
        assert await a.take()
        assert arm.world.holders("ip_config", VIP) == ["node1-nic"]
        arm.world.emulator.calls.clear()
        assert await b.take()
        assert arm.world.holders("ip_config", VIP) == ["node2-nic"]
        assert (await a.holder()).holder is Holder.PEER

    run(go())
    assert arm.world.emulator.writes() == {"node1-nic": 1, "node2-nic": 1}
    # the NIC list (with the ETags) is the read of both writes: no NIC is read again before its write;
    # the only NIC reads are the SDK poller's, of each write's result once its operation is over
    ops = [c.op for c in arm.world.emulator.calls]
    assert ops.count("get_nic") == ops.count("put_nic") == 2, ops
    nic = arm.world.emulator.nics["node2-nic"]
    assert [c.ip for c in nic.configs] == [ADDRS[1], VIP] and nic.configs[1].name == "cloudvip-198-51-100-100"
    assert host_b.addresses == {VIP}


def test_a_stale_etag_is_read_again_and_the_write_retried(arm: Arm) -> None:
    a, _ = provider(arm, 0, "ip_config")
    arm.world.emulator.faults["put_nic"] = [(412, "PreconditionFailed")]

    async def go() -> None:
        await a.start()
        assert await a.take()

    run(go())
    assert arm.world.holders("ip_config", VIP) == ["node1-nic"]
    puts = [c.status for c in arm.world.emulator.calls if c.op == "put_nic"]
    assert puts == [412, 200]


def test_the_etag_is_sent_so_a_concurrent_change_is_not_overwritten(arm: Arm) -> None:
    """Someone changes our NIC between our read and our write: ARM refuses the write (412), we
    read again and write on top of their change, which survives."""
    a, _ = provider(arm, 0, "ip_config")
    emu = arm.world.emulator
    real = emu._put_nic
    state = {"done": False}

    def racing(g, b, h):  # type: ignore[no-untyped-def]
        if not state["done"]:
            state["done"] = True
            nic = emu.nics["node1-nic"]
            nic.configs.append(type(nic.configs[0])("theirs", "198.51.100.77"))
            nic.etag = 'W/"changed"'
        return real(g, b, h)

    emu._put_nic = racing  # type: ignore[method-assign]

    async def go() -> None:
        await a.start()
        assert await a.take()

    run(go())
    assert [c.ip for c in emu.nics["node1-nic"].configs] == [ADDRS[0], "198.51.100.77", VIP]


def test_throttling_is_retryable_with_arms_retry_after(arm: Arm) -> None:
    a, _ = provider(arm, 0)
    arm.world.emulator.retry_after = 7
    arm.world.emulator.faults["put_route"] = [(429, "TooManyRequests")]

    async def go() -> None:
        await a.start()
        with pytest.raises(ProviderError) as err:
            await a.take()
        assert err.value.retryable and err.value.retry_after == 7.0 and "429" in str(err.value)
        arm.world.emulator.faults["put_route"] = [(500, "InternalServerError")]
        with pytest.raises(ProviderError) as err:
            await a.take()
        assert err.value.retryable
        arm.world.emulator.faults["put_route"] = [(403, "AuthorizationFailed")]
        with pytest.raises(ProviderError) as err:
            await a.take()
        assert not err.value.retryable and "AuthorizationFailed" in str(err.value)
        assert await a.take()

    run(go())
    assert arm.world.holders("route_table", VIP) == [ADDRS[0]]


def test_a_peers_running_update_holding_the_address_is_retryable(arm: Arm) -> None:
    arm.world.emulator.op_seconds = 5
    a, _ = provider(arm, 0, "ip_config")
    b, _ = provider(arm, 1, "ip_config", extra="        operation_timeout 5\n")

    async def go() -> None:
        await a.start()
        await b.start()
        claim = asyncio.create_task(a.take())
        await asyncio.sleep(0.5)  # node1's update runs, the address reserved for it
        with pytest.raises(ProviderError) as err:
            await b._point_to("node2-nic")
        assert err.value.retryable and err.value.code == "PrivateIPAddressInUse"
        claim.cancel()

    run(go())


def test_identity_from_imds_and_the_nic_by_mac(arm: Arm) -> None:
    a, _ = provider(arm, 0, identity=False)

    async def go() -> None:
        await a.start()

    run(go())
    assert a.ident is not None
    assert (a.ident.subscription, a.ident.resource_group, a.ident.vm, a.ident.nic, a.ident.ip) == \
        (SUBSCRIPTION, GROUP, "node1", "node1-nic", ADDRS[0])
    assert a.me == ADDRS[0]


def test_ip_forwarding_off_is_warned_in_route_mode(arm: Arm, caplog: pytest.LogCaptureFixture) -> None:
    a, _ = provider(arm, 0)
    with caplog.at_level(logging.WARNING):
        run(a.start())
    assert "IP forwarding is off on node1-nic" in caplog.text
    caplog.clear()
    arm.world.emulator.nics["node1-nic"].ip_forwarding = True
    a, _ = provider(arm, 0)
    with caplog.at_level(logging.WARNING):
        run(a.start())
    assert "IP forwarding" not in caplog.text


def test_peers_from_vm_tags(arm: Arm) -> None:
    a, _ = provider(arm, 0, peer=False, extra="        peer_tag cloudvip-group=lab\n")
    arm.world.emulator.add_vm("stranger", "198.51.100.50", "02:00:00:00:00:50", tags={"cloudvip-group": "other"})

    async def go() -> list[str]:
        await a.start()
        return [str(p) for p in await a.discover_peers()]

    assert run(go()) == [ADDRS[1]]


def test_no_token_reaches_the_logs(arm: Arm, caplog: pytest.LogCaptureFixture) -> None:
    a, _ = provider(arm, 0)

    async def go() -> None:
        await a.start()
        await a.take()

    with caplog.at_level(logging.DEBUG):
        run(go())
    assert arm.world.emulator.tokens
    assert not any(t in caplog.text for t in arm.world.emulator.tokens)


def test_without_the_ca_the_sdk_refuses_the_endpoint(arm: Arm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    a, _ = provider(arm, 0)
    with pytest.raises(ProviderError, match="(?i)certificate|ssl"):
        run(a.start())


def settings_errors(block: str, vips: str = f"{VIP}/32") -> list[str]:
    cfg = loads(f"vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n"
                f"    virtual_ipaddress {{\n        {vips}\n    }}\n    cloud azure {{\n{block}    }}\n}}\n")
    diags = Diagnostics()
    inst = cfg.instances[0]
    assert inst.cloud is not None
    parse(inst.cloud, inst, diags)
    return [str(d) for d in diags.errors]


def test_the_cloud_block_is_checked_with_file_and_line() -> None:
    assert settings_errors("        mode route_table\n        route_tables rt-1\n") == []
    assert settings_errors("        mode ip_config\n") == []
    errors = settings_errors("        mode route_table\n")
    assert any("needs route_tables" in e for e in errors)
    errors = settings_errors("        mode ip_config\n        subscription_id nope\n        route_tables rt\n")
    assert any(":9:" in e and "subscription id" in e for e in errors)
    assert any(":7:" in e and "route_tables is for mode route_table" in e for e in errors)
    errors = settings_errors("        mode route_table\n        route_tables /subscriptions/x/bad\n")
    assert any("route_tables /subscriptions/x/bad not valid" in e for e in errors)
    assert settings_errors(f"        mode route_table\n        route_tables /subscriptions/{SUBSCRIPTION}/resource"
                           f"Groups/rg-net/providers/Microsoft.Network/routeTables/rt-app\n") == []
    errors = settings_errors("        mode ip_config\n        ip_config_name x\n",
                             vips=f"{VIP}/32\n        198.51.100.101/32")
    assert any("ip_config_name names one resource" in e for e in errors)
    errors = settings_errors("        mode ip_config\n", vips="2001:db8::1/128")
    assert any("IPv4" in e for e in errors)
    errors = settings_errors("        mode ip_config\n        endpoint http://127.0.0.1:8080\n")
    assert any(":9:" in e and "HTTPS URL" in e for e in errors)


def test_nobody_is_waited_out_only_while_a_nic_update_runs(arm: Arm) -> None:
    """ip_config: the VIP on nobody is a peer's move between its two writes only while a NIC
    update runs (provisioningState Updating); with none running the master re-asserts at once
    (a grace of twice a 30-90 s move would be minutes without the VIP)."""
    arm.world.emulator.op_seconds = 1.0
    a, _ = provider(arm, 0, "ip_config")
    b, _ = provider(arm, 1, "ip_config")

    async def go() -> None:
        await a.start()
        await b.start()
        assert await a.take()
        assert a.nobody_grace() == 0.0
        emu = arm.world.emulator
        with emu.lock:  # b's move: the VIP removed from a's NIC, b's update (the add) running
            emu.nics["node1-nic"].configs = emu.nics["node1-nic"].configs[:1]
            emu._operation("/b", lambda: None).nic = "node2-nic"
        assert (await a.holder()).holder is Holder.NOBODY
        assert a.nobody_grace() >= 1.5
        await asyncio.sleep(1.1)  # the update is over and nobody holds the VIP: nothing moves it
        assert (await a.holder()).holder is Holder.NOBODY
        assert a.nobody_grace() == 0.0

    run(go())
