"""The hetzner provider against the local API: check, write, verify for floating and alias IPs,
alias lists kept intact, errors classified (429 waits at least a second, token never shown),
the token file's permissions, peers by label. (The host side is a recording fake here.)"""

from __future__ import annotations

import asyncio

from pathlib import Path

import pytest

from cloudvip.config import loads
from cloudvip.config.diagnostics import Diagnostics
from cloudvip_lab.hcloud_emulator import ALIAS_VIP, FLOATING_VIP, TOKEN, HetznerWorld
from cloudvip.provider import Holder, ProviderError, within_deadline
from cloudvip_providers.hetzner import HetznerProvider, classify, read_token
from cloudvip_providers.hetzner_settings import parse

from ..fake_host import FakeHost, build, run

ADDRS = ("198.51.100.11", "198.51.100.12")


def conf(cloud: str, vip: str, peer: str | None) -> str:
    peers = f"    unicast_peer {{\n        {peer}\n    }}\n" if peer else ""
    return (f"vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n    priority 100\n"
            f"{peers}    virtual_ipaddress {{\n        {vip}\n    }}\n    cloud hetzner {{\n{cloud}\n    }}\n}}\n")


def provider(hz: HetznerWorld, index: int, token_file: str, mode: str = "floating_ip",
             peer: bool = True, extra: str = "") -> tuple[HetznerProvider, FakeHost]:
    cloud = (f"        mode {mode}\n        server_id {hz.servers[index].id}\n        token_file {token_file}\n"
             f"        endpoint {hz.emulator.endpoint}\n        network {hz.network}\n"
             f"        poll_interval 0.05\n{extra}")
    vip = FLOATING_VIP if mode == "floating_ip" else ALIAS_VIP
    return build(HetznerProvider, conf(cloud, vip, ADDRS[1 - index] if peer else None))


def test_floating_ip_moves_verified_and_host_follows(hz: HetznerWorld, token_file: str) -> None:
    a, host_a = provider(hz, 0, token_file)
    b, host_b = provider(hz, 1, token_file)

    async def go() -> None:
        await a.start()
        await b.start()
        assert (await a.holder()).holder is Holder.NOBODY
        await a.take()
        await b.take()  # the failover: one assign, no unassign first
        assert (await b.holder()).holder is Holder.SELF
        info = await a.holder()
        assert info.holder is Holder.PEER and ADDRS[1] in info.detail
        await a.release()  # a backup never touches the cloud
        assert (await b.holder()).holder is Holder.SELF
        await b.take()  # already ours: a check, no write

    run(go())
    assert hz.holder_ids("floating_ip") == [hz.servers[1].id]
    assert hz.emulator.writes() == {hz.servers[0].id: 1, hz.servers[1].id: 1}
    assert host_b.addresses == {FLOATING_VIP} and host_a.addresses == set()


def test_floating_ip_found_by_the_vip_address(hz: HetznerWorld, token_file: str) -> None:
    a, _ = provider(hz, 0, token_file)  # no floating_ip key: the one containing the VIP
    run(a.start())
    assert a._fip_id == hz.floating_ip.id


def test_alias_ip_moves_and_other_alias_ips_stay(hz: HetznerWorld, token_file: str) -> None:
    a_srv, b_srv = (hz.emulator.servers[s.id] for s in hz.servers)
    a_srv.private[hz.network] = (ADDRS[0], ["198.51.100.90"])
    b_srv.private[hz.network] = (ADDRS[1], ["198.51.100.91"])
    a, _ = provider(hz, 0, token_file, mode="alias_ip")
    b, host_b = provider(hz, 1, token_file, mode="alias_ip")

    async def go() -> None:
        await a.start()
        await b.start()
        await a.take()
        await b.take()

    run(go())
    assert hz.holder_ids("alias_ip") == [b_srv.id]
    assert a_srv.private[hz.network][1] == ["198.51.100.90"]  # shrunk, its own alias kept
    assert b_srv.private[hz.network][1] == ["198.51.100.91", ALIAS_VIP]  # grown, its own alias kept
    assert host_b.addresses == {ALIAS_VIP}


def test_two_instances_on_one_server_keep_each_others_alias_ip(hz: HetznerWorld, token_file: str) -> None:
    """Two vrrp_instances of one agent, one server, one network, taking their alias IPs at the
    same time: each read-modify-write of the server's list sees the other's result."""
    hz.emulator.action_seconds = 0.2  # the actions overlap
    cloud = (f"        mode alias_ip\n        server_id {hz.servers[0].id}\n        token_file {token_file}\n"
             f"        endpoint {hz.emulator.endpoint}\n        network {hz.network}\n        poll_interval 0.05\n")
    a, _ = build(HetznerProvider, conf(cloud, ALIAS_VIP, ADDRS[1]))
    b, _ = build(HetznerProvider, conf(cloud, "198.51.100.201", ADDRS[1]).replace("VI_1", "VI_2"))

    async def go() -> None:
        await a.start()
        await b.start()
        await asyncio.gather(a.take(), b.take())

    run(go())
    srv = hz.emulator.servers[hz.servers[0].id]
    assert sorted(srv.private[hz.network][1]) == sorted([ALIAS_VIP, "198.51.100.201"])


def test_a_node_no_longer_master_makes_no_claim(hz: HetznerWorld, token_file: str) -> None:
    a, host = provider(hz, 0, token_file)
    a.ctx.wanted = lambda: False

    async def go() -> None:
        await a.start()
        await a.take()

    run(go())
    assert hz.emulator.writes() == {} and host.addresses == set()


def test_5xx_is_retryable_and_401_is_not(hz: HetznerWorld, token_file: str) -> None:
    a, _ = provider(hz, 0, token_file)
    run(a.start())
    hz.emulator.faults["get_floating_ip"] = [(503, "unavailable"), (401, "unauthorized")]
    errors = []
    for _ in range(2):
        with pytest.raises(ProviderError) as exc:
            run(a.holder())
        errors.append(exc.value)
    assert [(e.retryable, e.retry_after, e.code) for e in errors] == [(True, 0.0, "unavailable"),
                                                                      (False, 0.0, "unauthorized")]
    assert TOKEN not in " ".join(str(e) for e in errors)
    # neither is in hcloud's own retry policy: each cost one request
    assert [c.status for c in hz.emulator.calls if c.op == "get_floating_ip"][-2:] == [503, 401]


def test_429_after_hclouds_own_retries_waits_a_second() -> None:
    from hcloud import APIException

    err = classify(APIException("rate_limit_exceeded", "limit reached", None))
    assert (err.retryable, err.retry_after) == (True, 1.0)
    assert "hourly request budget is spent" in str(err)


def test_token_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("secret\n")
    path.chmod(0o644)
    with pytest.raises(ProviderError, match="chmod 600"):
        read_token(str(path))
    path.chmod(0o400)
    assert read_token(str(path)) == "secret"
    monkeypatch.setenv("HCLOUD_TOKEN", "from-env")
    assert read_token(None) == "from-env"
    monkeypatch.delenv("HCLOUD_TOKEN")
    with pytest.raises(ProviderError, match="HCLOUD_TOKEN"):
        read_token(None)


def test_peers_found_by_label(hz: HetznerWorld, token_file: str) -> None:
    a, _ = provider(hz, 0, token_file, peer=False, extra="        peer_label cloudvip-group=lab\n")

    async def go() -> list[str]:
        await a.start()
        return [str(p) for p in await a.discover_peers()]

    assert run(go()) == [ADDRS[1]]  # its address on our network, ourselves excluded


@pytest.mark.parametrize("cloud, message", [
    ("", "cloud hetzner: needs a mode"),
    ("        mode floating", "mode 'floating' is not valid"),
    ("        mode alias_ip\n        network abc", "network 'abc' is not valid"),
    ("        mode floating_ip\n        reconcile_interval 1", "reconcile_interval '1' is not valid"),
    ("        mode floating_ip\n        token_file relative/path", "token_file 'relative/path' is not valid"),
    ("        mode floating_ip\n        peer_label novalue", "peer_label 'novalue' is not valid"),
    ("        mode floating_ip\n        operation_timeout 900", "operation_timeout '900' is not valid"),
])
def test_cloud_block_errors(cloud: str, message: str) -> None:
    inst = loads(conf(cloud, FLOATING_VIP, None), "k.conf").instances[0]
    diags = Diagnostics()
    assert inst.cloud is not None
    assert parse(inst.cloud, inst, diags) is None
    assert any(message in str(d) and str(d).startswith("k.conf:") for d in diags.errors), diags.errors


def test_metadata_gives_server_and_network(hz: HetznerWorld, token_file: str) -> None:
    from http.server import ThreadingHTTPServer
    import threading

    from cloudvip_lab.netns_services import hetzner_metadata_handler

    yaml = f"- ip: {ADDRS[0]}\n  network_id: {hz.network}\n  network: 198.51.100.0/24\n  alias_ips: []\n"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), hetzner_metadata_handler({
        "/hetzner/v1/metadata/instance-id": str(hz.servers[0].id),
        "/hetzner/v1/metadata/private-networks": yaml}))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cloud = (f"        mode alias_ip\n        token_file {token_file}\n        endpoint {hz.emulator.endpoint}\n"
                 f"        metadata_endpoint http://127.0.0.1:{httpd.server_address[1]}/hetzner/v1/metadata")
        p, _ = build(HetznerProvider, conf(cloud, ALIAS_VIP, None))
        run(p.start())
        assert (p.me, p._network) == (str(hz.servers[0].id), hz.network)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_flood_of_lower_priority_masters_costs_one_read_per_reconcile_interval(hz: HetznerWorld,
                                                                                 token_file: str) -> None:
    """1,000 announce() calls (a master hearing 1,000 lower-priority adverts or events) read the
    owner once: the hourly budget (3,600 requests) is not the attacker's to spend."""
    a, _ = provider(hz, 0, token_file)

    async def go() -> None:
        await a.start()
        await a.take()
        before = len([c for c in hz.emulator.calls if c.op == "get_floating_ip"])
        for _ in range(1000):
            await a.announce()
        assert len([c for c in hz.emulator.calls if c.op == "get_floating_ip"]) - before == 1

    run(go())


@pytest.mark.parametrize("mode", ["floating_ip", "alias_ip"])
def test_an_action_that_never_finishes_ends_at_the_operation_deadline(hz: HetznerWorld, token_file: str,
                                                                       mode: str) -> None:
    """The action polls are ours (not hcloud's blocking wait of up to poll_max_retries): the
    operation's deadline ends them, whatever the mode does (alias_ip: two actions)."""
    a, host = provider(hz, 0, token_file, mode=mode, extra="        operation_timeout 5\n")
    run(a.start())
    assert a.operation_timeout == 5.0
    a.operation_timeout = 0.5  # below the setting's minimum, to keep the test short
    hz.emulator.action_seconds = 1e9

    async def go() -> None:
        with pytest.raises(ProviderError, match=r"take: no result within 0.5 s \(operation_timeout\)"):
            await within_deadline(a, "take", a.take())

    run(go())
    polls = [c for c in hz.emulator.calls if c.op.endswith("action")]
    assert len(polls) >= 3, hz.emulator.calls  # polled every poll_interval (0.05 s) until the deadline
    # the host took the address before the write (it draws no traffic until the cloud routes it
    # there): the client is served as soon as the move lands, and the mover retries the move
    assert host.addresses == {FLOATING_VIP if mode == "floating_ip" else ALIAS_VIP}


def test_a_hand_over_waits_out_the_actions_a_claim_takes(hz: HetznerWorld, token_file: str) -> None:
    """A node that stepped down hands the floating IP to the master only after the master's own
    claim had time to land: twice the actions it has seen run (here 1.2 s), not just 1.5 s
    (in the realistic lab a 2 s action: the hand-over was a second write, or a 423)."""
    a, _ = provider(hz, 0, token_file)
    hz.emulator.action_seconds = 1.2

    async def go() -> None:
        await a.start()
        await a.take()

    run(go())
    assert a.handover_grace() >= 2.4
