"""What a user meets first: `cloudvip --help`, the man pages generated from the parser and the
configuration reference, bash completion, one version everywhere, a README that fits on two screens."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from cloudvip import __version__
from cloudvip.cli import DESCRIPTION, SECTIONS, build_parser

ROOT = Path(__file__).resolve().parents[2]


def manpages() -> ModuleType:
    spec = importlib.util.spec_from_file_location("manpages", ROOT / "packaging" / "manpages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["manpages"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_help_says_what_it_is_in_one_line() -> None:
    out = subprocess.run([sys.executable, "-m", "cloudvip", "--help"], capture_output=True, text=True).stdout
    assert out.splitlines()[2] == DESCRIPTION and len(DESCRIPTION) <= 80
    assert "The `cloudvip` command line" not in out
    for title in SECTIONS:  # the signals, files and exit status of cloudvip(8), in --help too
        assert f"{title.lower()}:" in out


def test_every_command_and_option_is_in_the_man_page() -> None:
    page = manpages().cloudvip_8()
    commands: dict[str, argparse.ArgumentParser] = {}
    build_parser(commands)
    assert len(commands) >= 9
    for name, parser in commands.items():
        assert f".SS {name.replace('-', chr(92) + '-')}" in page, name
        for option in re.findall(r"(?<![\w-])(--?[a-z][-a-z]*)", parser.format_usage()):
            assert option.replace("-", "\\-") in page, (name, option)
    for title in SECTIONS:
        assert f".SH {title}" in page


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", ["cloudvip_8", "cloudvip_conf_5"])
def test_the_man_pages_render_without_a_warning(page: str, tmp_path: Path) -> None:
    source = tmp_path / "page"
    source.write_text(getattr(manpages(), page)())
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(source)], capture_output=True, text=True,
                            env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert result.returncode == 0 and not result.stderr, result.stderr


def test_the_conf_page_is_the_configuration_reference() -> None:
    page = manpages().cloudvip_conf_5()
    for keyword in ("cloud aws", "cloud hetzner", "cloud gcp", "cloud azure", "haproxy_socket", "auth_hmac",
                    "keepalived_config", "THE COMPATIBILITY CONTRACT"):
        assert keyword in page, keyword


def test_one_version_everywhere() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    changelog = re.match(r"cloudvip \(([^)]+)\)", (ROOT / "debian" / "changelog").read_text())
    assert changelog is not None
    assert project == __version__ == changelog.group(1)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_follows_the_parser(tmp_path: Path) -> None:
    """The completion asks `cloudvip --help`: a new command or option completes without editing it."""
    shim = tmp_path / "cloudvip"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m cloudvip \"$@\"\n")
    shim.chmod(0o755)
    script = (f"source {ROOT}/packaging/bash-completion/cloudvip; "
              "COMP_WORDS=(cloudvip ''); COMP_CWORD=1; _cloudvip; echo \"1:${COMPREPLY[*]}\"; "
              "COMP_WORDS=(cloudvip doctor --n); COMP_CWORD=2; _cloudvip; echo \"2:${COMPREPLY[*]}\"; "
              "COMP_WORDS=(cloudvip run --log-level w); COMP_CWORD=3; _cloudvip; echo \"3:${COMPREPLY[*]}\"")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}).stdout
    first = out.split("1:")[1].splitlines()[0].split()
    commands: dict[str, argparse.ArgumentParser] = {}
    build_parser(commands)
    assert set(commands) <= set(first), first
    assert "2:--no-listen" in out and "3:warning" in out, out


def test_the_readme_fits_on_two_screens() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 2 * 50, len(lines)
    assert max(len(line) for line in lines) <= 100
    for doc in re.findall(r"\]\((docs/[^)#]+)", "\n".join(lines)):  # and every page it links to exists
        assert (ROOT / doc).is_file(), doc


@pytest.mark.parametrize("cloud", ["aws", "hetzner", "gcp", "azure"])
def test_every_setting_of_each_cloud_block_is_in_the_reference(cloud: str) -> None:
    """A new setting of a cloud block cannot ship undocumented in docs/configuration.md (and cloudvip.conf(5))."""
    import dataclasses
    import importlib

    module = importlib.import_module(f"cloudvip_providers.{cloud}_settings")
    settings = next(v for k, v in vars(module).items() if k.endswith("Settings") and dataclasses.is_dataclass(v))
    reference = (ROOT / "docs" / "configuration.md").read_text()
    section = reference[reference.index(f"### cloud {cloud}"):]
    section = section[:section.index("\n##", 5)]
    missing = [f.name for f in dataclasses.fields(settings) if f.name not in section]
    assert not missing, missing
