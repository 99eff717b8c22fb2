"""A local Compute Engine API (lab/cloudvip_lab/gce_emulator.py) on 127.0.0.1, fresh per test,
and a service-account key it trusts, found by google-auth's default chain."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("google.cloud.compute_v1")

from cloudvip_lab.gce_emulator import GceWorld, build_world, service_account_key  # noqa: E402

ADDRS = ("198.51.100.11", "198.51.100.12")
MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")


@pytest.fixture
def gce(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GceWorld]:
    world = build_world(list(zip(ADDRS, MACS, strict=True)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", service_account_key(world.emulator, str(tmp_path / "sa.json")))
    try:
        yield world
    finally:
        world.emulator.close()
