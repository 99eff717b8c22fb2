"""What `keepalived -t` (as Ansible's `validate:` runs it) says of the companion layout, with
Debian's keepalived 2.2.7 and keepalived 2.4.3: the keepalived.conf of the README's layout
passes, the old layout (a cloud block inside the vrrp_instance) fails, and `cloudvip
check-config` reports the same verdict. keepalived -t needs the configured interface: it runs in
a namespace that has one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip_lab.hardened_keepalived import ScriptUser
from cloudvip_lab.topology import ip

from ..keepalived_builds import KEEPALIVED22, KEEPALIVED24, needs_keepalived24
from .conftest import needs_keepalived, needs_root

DATA = Path(__file__).parent.parent / "data" / "companion"
pytestmark = [needs_root, needs_keepalived]


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """A namespace with the README's interface (ens5)."""
    name = f"cvkt{os.getpid()}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "add", "ens5", "type", "veth", "peer", "name", "ens5p")
        ip("-n", name, "link", "set", "ens5", "up")
        yield name
    finally:
        ip("netns", "del", name, check=False)


def keepalived_t(netns: str, binary: str, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, binary, "-t", "-l", "-f", str(conf)],
                          capture_output=True, text=True, timeout=60)


def as_root_scripts(tmp_path: Path) -> Path:
    """The README's keepalived.conf with `script_user root`: keepalived 2.2.7's -t kills itself
    when it checks a script as another user (fixed in 2.4), so 2.2.7 can judge only this variant."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text((DATA / "keepalived.conf").read_text().replace("script_user keepalived_script",
                                                                   "script_user root"))
    return conf


def test_keepalived_22_accepts_the_companion_layout_and_rejects_the_old_one(netns: str, tmp_path: Path) -> None:
    assert KEEPALIVED22 is not None
    ok = keepalived_t(netns, KEEPALIVED22, as_root_scripts(tmp_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = keepalived_t(netns, KEEPALIVED22, DATA / "keepalived-cloud-inside.conf")
    assert bad.returncode != 0 and "Unknown keyword 'cloud'" in bad.stdout + bad.stderr


@needs_keepalived24
def test_keepalived_24_accepts_the_hardened_companion_layout_and_rejects_the_old_one(netns: str) -> None:
    with ScriptUser():
        ok = keepalived_t(netns, KEEPALIVED24, DATA / "keepalived.conf")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        bad = keepalived_t(netns, KEEPALIVED24, DATA / "keepalived-cloud-inside.conf")
        assert bad.returncode != 0 and "Unknown keyword 'cloud'" in bad.stdout + bad.stderr


def check_config(netns: str, conf: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-m", "cloudvip", "check-config", "-f",
                           str(conf), *extra], capture_output=True, text=True, timeout=60)


def test_check_config_runs_keepalived_t_on_the_keepalived_conf(netns: str, tmp_path: Path) -> None:
    kconf = as_root_scripts(tmp_path)
    companion = tmp_path / "companion.conf"
    companion.write_text((DATA / "companion.conf").read_text())
    good = check_config(netns, companion)
    assert good.returncode == 0 and f"{kconf}: `keepalived -t` accepts it" in good.stdout, good.stdout + good.stderr
    old = check_config(netns, DATA / "keepalived-cloud-inside.conf")
    assert old.returncode == 1, old.stdout + old.stderr
    assert "`keepalived -t` REJECTS it" in old.stderr and "cloud block is cloudvip-only" in old.stderr
    assert check_config(netns, DATA / "keepalived-cloud-inside.conf", "--no-keepalived-check").returncode == 0
