"""EC2 emulated by moto's threaded server on 127.0.0.1, corrected where moto is wrong
(lab/cloudvip_lab/ec2_emulator.py)."""

from __future__ import annotations

from typing import Iterator

import pytest

pytest.importorskip("moto")
pytest.importorskip("boto3")

from cloudvip_lab.ec2_emulator import REGION, Ec2Server, Ec2World, build_world  # noqa: E402

__all__ = ["REGION", "Ec2World"]


@pytest.fixture(scope="session")
def ec2_server() -> Iterator[Ec2Server]:
    server = Ec2Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(ec2_server: Ec2Server) -> str:
    return ec2_server.endpoint


@pytest.fixture
def nodes() -> int:
    """How many lab nodes (and instances) a test's world has: `parametrize("nodes", ...)` overrides it."""
    return 2


@pytest.fixture
def ec2(ec2_server: Ec2Server, nodes: int) -> Ec2World:
    return build_world(ec2_server, tuple(f"198.51.100.{11 + i}" for i in range(nodes)))
