"""The Hetzner Cloud API over HTTPS as it is: hcloud verifies the endpoint against the CA it is
told about (REQUESTS_CA_BUNDLE; verification is never off), a TLS failure says so, and the
connection stays open between calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudvip.provider import ProviderError
from cloudvip_lab.cloud_edge import ApiEdge, LabCa
from cloudvip_lab.hcloud_emulator import HetznerWorld
from cloudvip_providers.hetzner import HetznerProvider

from ..fake_host import build, run
from .test_hetzner_provider import ADDRS, conf


def tls_provider(hz: HetznerWorld, token_file: str, port: int) -> HetznerProvider:
    cloud = (f"        mode floating_ip\n        server_id {hz.servers[0].id}\n        token_file {token_file}\n"
             f"        endpoint https://127.0.0.1:{port}/v1\n        poll_interval 0.05\n")
    p, _ = build(HetznerProvider, conf(cloud, "203.0.113.200", ADDRS[1]))
    return p


def test_hcloud_verifies_the_endpoint_against_the_ca_it_is_given(
        hz: HetznerWorld, token_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = LabCa(tmp_path / "ca")
    edge = ApiEdge(hz.emulator.port, ca=ca, idle_close=60)
    assert edge.front is not None

    async def take(p: HetznerProvider, reads: int = 0) -> None:
        await p.start()
        for _ in range(reads):
            await p.holder()
        await p.take()

    try:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        with pytest.raises(ProviderError, match="CERTIFICATE_VERIFY_FAILED"):
            run(take(tls_provider(hz, token_file, edge.port)))
        assert hz.emulator.writes() == {}

        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_file))
        before = edge.front.handshakes
        run(take(tls_provider(hz, token_file, edge.port), reads=3))
        assert hz.emulator.writes() == {hz.servers[0].id: 1}
        assert edge.front.handshakes - before == 1
    finally:
        edge.close()
