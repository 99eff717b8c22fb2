"""The doctor's host checks that need no namespace: scripts as the agent would judge them, the
clock's verdict, keepalived -t in companion mode."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cloudvip.config import load, loads
from cloudvip.doctor.clock import ClockState
from cloudvip.doctor.findings import Status
from cloudvip.doctor.host import clock_finding, keepalived_t_finding, script_findings

INSTANCE = """vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    unicast_peer {{
        10.0.0.2
    }}
    virtual_ipaddress {{
        10.0.0.100/24
    }}
    {extra}
}}
"""


def conf(global_defs: str = "", extra: str = "", scripts: str = "") -> str:
    return f"global_defs {{\n{global_defs}\n}}\n{scripts}\n" + INSTANCE.format(extra=extra)


@pytest.mark.skipif(os.geteuid() != 0, reason="script security judges files owned by root")
def test_scripts_missing_insecure_and_fine(tmp_path: Path) -> None:
    good = Path("/bin/true")
    unsafe = tmp_path / "check.sh"  # under /tmp: a world-writable directory leads to it
    unsafe.write_text("#!/bin/sh\nexit 0\n")
    unsafe.chmod(0o755)
    text = conf("    enable_script_security\n    script_user root",
                "track_script {\n        chk_ok\n        chk_unsafe\n        chk_gone\n    }\n"
                "    notify_master /bin/true",
                f"vrrp_script chk_ok {{\n    script {good}\n}}\nvrrp_script chk_unsafe {{\n    script {unsafe}\n}}\n"
                "vrrp_script chk_gone {\n    script /nonexistent/check\n}\n")
    found = {f.found.split(":")[0]: f for f in script_findings(loads(text))}
    assert found["vrrp_script chk_ok"].status is Status.OK and "runs as root" in found["vrrp_script chk_ok"].found
    assert found["vrrp_script chk_unsafe"].status is Status.FAIL
    assert "chown root:root" in found["vrrp_script chk_unsafe"].fix
    assert found["vrrp_script chk_gone"].status is Status.FAIL and "install" in found["vrrp_script chk_gone"].fix
    assert "notify" not in found  # /bin/true was judged once, as chk_ok


def test_a_missing_script_user_under_script_security() -> None:
    text = conf("    enable_script_security\n    script_user nosuchuser-cloudvip",
                "track_script {\n        chk\n    }", "vrrp_script chk {\n    script /bin/true\n}\n")
    [f] = script_findings(loads(text))
    assert f.status is Status.FAIL and "nosuchuser-cloudvip" in f.found


def test_the_clock_fails_only_where_adverts_depend_on_it() -> None:
    plain = loads(conf())
    unsynced = lambda: ClockState(False, 16_000_000)  # noqa: E731
    assert clock_finding(plain, unsynced).status is Status.WARN
    assert clock_finding(plain, lambda: ClockState(True, 12_000)).status is Status.OK
    hmac = loads(conf(extra="auth_hmac {\n        key 1 " + "x" * 40 + "\n        active_key 1\n"
                            "        anti_replay time\n    }"))
    f = clock_finding(hmac, unsynced)
    assert f.status is Status.FAIL and "VI_1" in f.found and "chrony" in f.fix


@pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed")
def test_companion_mode_runs_keepalived_t(tmp_path: Path) -> None:
    """A keepalived.conf meant for stock keepalived (it calls `cloudvip notify`): doctor asks
    keepalived itself, as `keepalived -t` would be asked before installing the file."""
    path = tmp_path / "keepalived.conf"
    path.write_text(conf(extra='notify "/usr/local/bin/cloudvip notify"'))
    f = keepalived_t_finding(load(path))
    assert f is not None and f.status is Status.OK and "accepted" in f.found
    # a cloud block in the file stock keepalived runs: cloudvip reads it (and warns), keepalived does not
    path.write_text(conf(extra='notify "/usr/local/bin/cloudvip notify"\n    cloud aws {\n        mode secondary_ip\n'
                               '        region eu-central-1\n    }'))
    f = keepalived_t_finding(load(path))
    assert f is not None and f.status is Status.FAIL and "keepalived -t -l -f" in f.fix
    assert keepalived_t_finding(loads(conf())) is None  # the agent's own file: keepalived does not run it
