"""A local Azure Resource Manager (lab/cloudvip_lab/arm_emulator.py) behind TLS with a CA made for
the test (the SDK sends its bearer token over HTTPS only, and verifies the CA through
REQUESTS_CA_BUNDLE), fresh per test, and a fake IMDS whose managed identity hands out the
tokens it accepts (AZURE_POD_IDENTITY_AUTHORITY_HOST, azure-identity's own setting)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("azure.mgmt.network")
pytest.importorskip("azure.identity")

from cloudvip_lab.arm_emulator import GROUP, LOCATION, SUBSCRIPTION, ArmWorld, build_world  # noqa: E402
from cloudvip_lab.cloud_edge import ApiEdge, LabCa  # noqa: E402
from cloudvip_lab.netns_services import azure_imds_handler, azure_instance_metadata  # noqa: E402

ADDRS = ("198.51.100.11", "198.51.100.12")
MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")


@dataclass
class Arm:
    world: ArmWorld
    endpoint: str  # https://127.0.0.1:PORT (the TLS edge)
    imds: str  # http://127.0.0.1:PORT: node1's IMDS (FakeHost's MAC is node1's)


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Arm]:
    world = build_world(list(zip(ADDRS, MACS, strict=True)))
    ca = LabCa(tmp_path / "ca")
    edge = ApiEdge(world.emulator.port, ca=ca)
    world.emulator.public_base = f"https://127.0.0.1:{edge.port}"
    meta = azure_instance_metadata(SUBSCRIPTION, GROUP, "node1", LOCATION, MACS[0], ADDRS[0], {})
    imds = ThreadingHTTPServer(("127.0.0.1", 0), azure_imds_handler(lambda: meta, world.emulator.issue_token))
    threading.Thread(target=imds.serve_forever, daemon=True).start()
    imds_url = f"http://127.0.0.1:{imds.server_address[1]}"
    for name, value in ca.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds_url)
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                 "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield Arm(world, f"https://127.0.0.1:{edge.port}", imds_url)
    finally:
        imds.shutdown()
        imds.server_close()
        edge.close()
        world.emulator.close()
