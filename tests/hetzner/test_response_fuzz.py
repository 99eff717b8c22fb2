"""What the hetzner provider makes of the Hetzner Cloud API's answers, fuzzed (hypothesis) like
the packet decoder: JSON of any shape built from the API's own field names (null, numbers,
strings, lists where objects belong), error bodies, any status, bytes that are no JSON. Every
provider operation either completes or raises a ProviderError that says what went wrong.

The answers reach the real hcloud client through a requests transport adapter mounted on its
session, so hcloud's own decoding runs as against the API; nothing goes on the network."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

pytest.importorskip("hcloud")

import requests  # noqa: E402
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cloudvip_providers.hetzner import HetznerProvider  # noqa: E402

from ..fake_host import build  # noqa: E402
from ..provider_fuzz import every_operation, instance_conf, start_answered  # noqa: E402

KEYS = ["floating_ip", "floating_ips", "server", "servers", "action", "actions", "id", "status", "command",
        "error", "code", "message", "private_net", "network", "ip", "alias_ips", "public_net", "ipv4", "meta",
        "pagination", "next_page", "labels", "name", "progress", "started", "finished", "resources"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 50), st.sampled_from(
    ["success", "running", "error", "198.51.100.11", "198.51.100.12", "198.51.100.100", "198.51.100.0/24", "x", ""]),
    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=20)
def loose(proper: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right type, now and then anything at all."""
    return st.one_of(proper, proper, proper, values)


ids = st.integers(1, 4)
# hcloud itself needs mac_address and the like: the parts our own reading touches vary most
private_net = st.fixed_dictionaries({
    "network": loose(st.just(7) | ids), "ip": loose(st.sampled_from(["198.51.100.11", "198.51.100.12"])),
    "alias_ips": loose(st.lists(st.sampled_from(["198.51.100.100", "198.51.100.50"]), max_size=2)),
    "mac_address": st.just("86:00:00:00:00:01")})
ipv4 = {"id": 1, "ip": "192.0.2.1", "blocked": False, "dns_ptr": []}
server = st.fixed_dictionaries({"id": loose(ids)}, optional={
    "name": scalars, "private_net": loose(st.lists(private_net, max_size=2)),
    "labels": loose(st.just({"cluster": "lab"})),
    "public_net": loose(st.fixed_dictionaries({"ipv4": st.just(ipv4) | st.none(), "ipv6": st.none(),
                                               "floating_ips": st.just([])}))})
pagination = st.just({"pagination": {"page": 1, "per_page": 50, "next_page": None, "last_page": 1}})
action = st.fixed_dictionaries({"id": loose(ids), "status": loose(st.sampled_from(["success", "running", "error"]))},
                               optional={"command": scalars, "error": loose(st.none()), "progress": scalars})
floating = st.fixed_dictionaries({"id": loose(st.just(5)), "ip": loose(st.just("198.51.100.100"))},
                                 optional={"server": loose(ids | st.none())})
# API-shaped answers with parts missing or of another type, any JSON, and bytes that are no JSON
shaped = st.one_of(
    st.fixed_dictionaries({"servers": loose(st.lists(server, max_size=3))}, optional={"meta": loose(pagination)}),
    st.fixed_dictionaries({"server": loose(server)}), st.fixed_dictionaries({"action": loose(action)}),
    st.fixed_dictionaries({"floating_ip": loose(floating)}),
    st.fixed_dictionaries({"floating_ips": loose(st.lists(floating, max_size=2))}, optional={"meta": pagination}),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=4))
body = st.one_of(shaped.map(lambda d: json.dumps(d).encode()), st.binary(max_size=200))
answer = st.tuples(st.sampled_from([200] * 6 + [201, 400, 401, 404, 409, 423, 429, 500, 503]), body)

MODES = ("floating_ip", "alias_ip")


class Scripted(requests.adapters.BaseAdapter):
    """Answers every request with the next scripted answer, then with `{}` (which ends any
    polling or paging loop a scripted answer started)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: Iterator[tuple[int, bytes]] = iter(())

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        status, data = next(self.answers, (200, b"{}"))
        r = requests.Response()
        r.status_code, r._content, r.url, r.request = status, data, str(request.url), request
        r.headers["Content-Type"] = "application/json"
        return r

    def close(self) -> None:
        pass


def fuzzed_provider(mode: str) -> tuple[HetznerProvider, Scripted]:
    vip = "198.51.100.100/32" if mode == "floating_ip" else "198.51.100.100/24"
    fip = "        floating_ip 5\n" if mode == "floating_ip" else ""
    conf = instance_conf(vip, "hetzner", f"        mode {mode}\n        server_id 1\n        network 7\n{fip}"
                                         "        peer_label cluster=lab\n        poll_interval 0.05\n"
                                         "        endpoint http://127.0.0.1:9/v1\n")
    p, _ = build(HetznerProvider, conf)
    script = Scripted()
    start_answered(p, lambda client: client._client._session.mount("http://", script))
    return p, script


@pytest.mark.parametrize("mode", MODES)
def test_any_api_answer_gives_a_result_or_a_provider_error(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HCLOUD_TOKEN", "fuzz-token")
    p, script = fuzzed_provider(mode)
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(answer, min_size=1, max_size=6))
    @example([(200, json.dumps({"servers": [{"id": 2, "private_net": [  # a network id that is no number
        {"network": "x", "ip": "198.51.100.12", "alias_ips": [], "mac_address": "m"}]}]}).encode())])
    def check(answers: list[tuple[int, bytes]]) -> None:
        every_operation(p, lambda: setattr(script, "answers", iter(answers)), seen, secret="fuzz-token")

    check()
    assert {"ok", "error"} <= seen, seen  # the fuzz reached both outcomes
