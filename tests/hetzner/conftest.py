"""A local Hetzner Cloud API (cloudvip/lab/hcloud_emulator.py) on 127.0.0.1, fresh per test."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("hcloud")

from cloudvip.lab.hcloud_emulator import TOKEN, HetznerWorld, build_world  # noqa: E402


@pytest.fixture
def hz() -> Iterator[HetznerWorld]:
    world = build_world()
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
