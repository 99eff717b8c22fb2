"""A local Hetzner Cloud API (lab/cloudvip_lab/hcloud_emulator.py) on 127.0.0.1, fresh per test."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("hcloud")

from cloudvip_lab.hcloud_emulator import TOKEN, HetznerWorld, build_world  # noqa: E402


@pytest.fixture
def nodes() -> int:
    """How many lab nodes (and servers) a test's world has: `parametrize("nodes", ...)` overrides it."""
    return 2


@pytest.fixture
def hz(nodes: int) -> Iterator[HetznerWorld]:
    world = build_world(tuple(f"198.51.100.{11 + i}" for i in range(nodes)))
    try:
        yield world
    finally:
        world.emulator.close()


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "hcloud-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return str(path)
