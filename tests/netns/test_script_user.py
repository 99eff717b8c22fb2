"""Scripts run as keepalived runs them, never with more privilege: under enable_script_security
with no script_user, as keepalived_script (keepalived's default); a notify line's own user and
group (`notify_master "script args" nobody nogroup`) win; notify_fifo_script runs as the script
user and reads the FIFO the agent made for it; no script sees the agent's cloud credentials.
Each script reports `id -u`, `id -g` and its environment."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip_lab.daemons import Daemon, vrrp_conf
from cloudvip_lab.hardened_keepalived import ScriptUser, SecureDir
from cloudvip_lab.topology import Topology

from .conftest import needs_root

pytestmark = [needs_root, pytest.mark.netns]
SECRETS = {"HCLOUD_TOKEN": "hc-secret-token", "AWS_SECRET_ACCESS_KEY": "aws-secret-key"}


@pytest.fixture
def secure() -> Iterator[SecureDir]:
    d = SecureDir("cloudvip-test-")
    try:
        yield d
    finally:
        d.close()


def report(path: Path) -> tuple[int, int, dict[str, str]]:
    uid, gid, *env = path.read_text().splitlines()
    return int(uid), int(gid), dict(line.split("=", 1) for line in env if "=" in line)


def test_scripts_run_as_keepalived_would_with_a_minimal_environment(secure: SecureDir, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)  # the agent's environment (an EnvironmentFile, say)
    out = secure.path / "out"
    out.mkdir()
    out.chmod(0o1777)
    script = secure.path / "report.sh"
    script.write_text(f'#!/bin/sh\n{{ id -u; id -g; env; }} > {out}/$1.tmp && mv {out}/$1.tmp {out}/$1\n'
                      '[ "$1" = fifo ] && exec cat "$2" > /dev/null\nexit 0\n')
    script.chmod(0o755)
    fifo = secure.path / "notify.fifo"
    topo = Topology("cvsu", 2).create()
    agent: Daemon | None = None
    try:
        with ScriptUser() as user:
            n1, n2 = topo.nodes
            conf = vrrp_conf(n1, [n2], priority=100, version=3, advert=0.1, global_extra=(
                f"    enable_script_security\n    notify_fifo {fifo}\n    notify_fifo_script \"{script} fifo\"\n"),
                extra=(f'    notify_master "{script} master" nobody nogroup\n    notify "{script} generic"\n'
                       "    track_script {\n        chk\n    }\n"))
            check = f'vrrp_script chk {{\n    script "{script} check"\n    interval 1\n}}\n\n'
            conf = conf.replace("vrrp_instance", check + "vrrp_instance", 1)
            agent = Daemon(topo, n1, "cloudvip", conf, tmp_path).start()
            names = ("master", "generic", "check", "fifo")
            assert topo.wait_for(lambda: all((out / n).exists() for n in names), 15, 0.05), agent.log
            ks = pwd.getpwnam(user.name)
            expected = {"master": (pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid),
                        "generic": (ks.pw_uid, ks.pw_gid), "check": (ks.pw_uid, ks.pw_gid),
                        "fifo": (ks.pw_uid, ks.pw_gid)}
            for name in names:
                uid, gid, env = report(out / name)
                assert (uid, gid) == expected[name], name
                assert not set(SECRETS) & set(env) and "PATH" in env, (name, env)
                assert not any(v in (out / name).read_text() for v in SECRETS.values())
            assert os.stat(fifo).st_uid == ks.pw_uid  # made for its reader, as keepalived makes it
            assert agent.term() == 0
    finally:
        if agent is not None and agent.alive:
            agent.kill()
        topo.destroy()
