"""Every Terraform example installs cloudvip the same way (module shared/package): the Debian package
from a URL the user controls, its SHA-256 checked when given, or pip as the alternative."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ..terraform import SHARED, install_package, startup_script, unq

EXAMPLES = ("aws", "hetzner", "gcp", "azure")
URL = "https://artifacts.example.org/cloudvip_0.1.0_amd64.deb"
SHA = "a" * 64


def test_the_package_step_installs_the_deb_from_the_url() -> None:
    text = install_package(deb_url=URL, deb_sha256=SHA)
    assert f"curl -fsSL --retry 5 -o /var/tmp/cloudvip.deb '{URL}'" in text
    assert f"echo '{SHA}  /var/tmp/cloudvip.deb' | sha256sum -c -" in text
    assert text.index("sha256sum -c") < text.index("apt-get install -y -q /var/tmp/cloudvip.deb")
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)  # it parses as a shell script


def test_the_pip_path_stays_the_alternative() -> None:
    text = install_package(pip_package="cloudvip[aws]")
    assert "pip install -q 'cloudvip[aws]'" in text and "ExecStart=/usr/local/bin/cloudvip run" in text
    subprocess.run(["sh", "-n"], input=startup_script(pip_package="cloudvip[aws]"), text=True, check=True)


def test_the_deb_branch_runs_when_a_url_is_given(tmp_path: Path) -> None:
    """The rendered step run with stand-ins for apt-get and curl on PATH: it downloads, checks, installs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for tool in ("apt-get", "curl"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {log}\n"
                                    + ("while [ $# -gt 1 ]; do [ \"$1\" = -o ] && echo deb > \"$2\"; shift; done\n"
                                       if tool == "curl" else ""))
        (bin_dir / tool).chmod(0o755)
    import hashlib

    script = install_package(deb_url=URL, deb_sha256=hashlib.sha256(b"deb\n").hexdigest())
    script = script.replace("/opt/cloudvip/bin/cloudvip", str(tmp_path / "absent"))
    script = script.replace("/var/tmp/cloudvip.deb", str(tmp_path / "cloudvip.deb"))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(["sh", "-eu"], input=script, text=True, check=True, env=env)
    calls = log.read_text().splitlines()
    assert calls[-1] == f"apt-get install -y -q {tmp_path / 'cloudvip.deb'}", calls
    bad = script.replace(hashlib.sha256(b"deb\n").hexdigest(), SHA)
    assert subprocess.run(["sh", "-eu"], input=bad, text=True, env=env, capture_output=True).returncode != 0


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_takes_the_url_from_a_variable(example: str) -> None:
    tf = SHARED.parent / example
    import hcl2

    with open(tf / "variables.tf") as fh:
        declared = {unq(k): v for entry in hcl2.load(fh)["variable"] for k, v in entry.items()}
    assert "default" not in declared["cloudvip_deb_url"]  # the user says where the package is
    assert unq(declared["cloudvip_deb_sha256"]["default"]) == ""
    text = (tf / "main.tf").read_text()
    assert 'source      = "../shared/package"' in text and "deb_url     = var.cloudvip_deb_url" in text
    assert "module.cloudvip_package.install_script" in text
