"""The emulator driven by the real hcloud client: the endpoints, payloads and errors failover
uses behave as Hetzner documents them (so a provider that is wrong there fails here)."""

from __future__ import annotations

import time

import pytest
from hcloud import APIException, Client
from hcloud.networks.domain import Network
from hcloud.servers.domain import Server

from cloudvip_lab.hcloud_emulator import ALIAS_VIP, TOKEN, HetznerWorld, build_world


def client(hz: HetznerWorld, token: str = TOKEN) -> Client:
    c = Client(token, api_endpoint=hz.emulator.endpoint, poll_interval=0.02)
    c._client._retry_max_retries = 0  # see what the API answers, not hcloud's retries
    return c


def test_floating_ip_assign_moves_it_directly_when_the_action_finishes() -> None:
    hz = build_world(action_seconds=0.2)
    try:
        c = client(hz)
        a, b = hz.servers
        action = c.floating_ips.get_by_id(hz.floating_ip.id).assign(Server(id=a.id))
        assert action.status == "running" and hz.holder_ids("floating_ip") == []  # not before it finished
        action.wait_until_finished()
        assert action.status == "success" and hz.holder_ids("floating_ip") == [a.id]
        c.floating_ips.get_by_id(hz.floating_ip.id).assign(Server(id=b.id)).wait_until_finished()  # no unassign
        assert c.floating_ips.get_by_id(hz.floating_ip.id).server.id == b.id
        assert c.servers.get_by_id(b.id).public_net.floating_ips[0].id == hz.floating_ip.id
    finally:
        hz.emulator.close()


def test_alias_ips_replace_the_list_and_belong_to_one_server(hz: HetznerWorld) -> None:
    c = client(hz)
    a, b = hz.servers
    net = Network(id=hz.network)
    c.servers.change_alias_ips(Server(id=a.id), net, ["198.51.100.90", ALIAS_VIP]).wait_until_finished()
    assert c.servers.get_by_id(a.id).private_net[0].alias_ips == ["198.51.100.90", ALIAS_VIP]
    with pytest.raises(APIException) as exc:
        c.servers.change_alias_ips(Server(id=b.id), net, [ALIAS_VIP])
    assert exc.value.code == "conflict"
    assert hz.holder_ids("alias_ip") == [a.id]


def test_errors_have_hetzners_shape(hz: HetznerWorld) -> None:
    with pytest.raises(APIException) as exc:
        client(hz, "wrong").servers.get_by_id(hz.servers[0].id)
    assert exc.value.code == "unauthorized"
    with pytest.raises(APIException) as exc:
        client(hz).floating_ips.get_by_id(999999)
    assert exc.value.code == "not_found"


def test_injected_429_carries_rate_limit_headers(hz: HetznerWorld) -> None:
    import requests

    hz.emulator.faults["get_floating_ip"] = [(429, "rate_limit_exceeded")]
    url = f"{hz.emulator.endpoint}/floating_ips/{hz.floating_ip.id}"
    r = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.headers["RateLimit-Remaining"] == "0" and int(r.headers["RateLimit-Reset"]) >= int(time.time())
    r = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert r.status_code == 200 and int(r.headers["RateLimit-Limit"]) == 3600
    assert int(r.headers["RateLimit-Remaining"]) < 3600


def test_label_selector_and_writes(hz: HetznerWorld) -> None:
    c = client(hz)
    hz.emulator.servers[hz.servers[1].id].labels = {"other": "x"}
    assert [s.id for s in c.servers.get_all(label_selector="cloudvip-group=lab")] == [hz.servers[0].id]
    c.floating_ips.get_by_id(hz.floating_ip.id).assign(Server(id=hz.servers[0].id)).wait_until_finished()
    assert hz.emulator.writes() == {hz.servers[0].id: 1}
