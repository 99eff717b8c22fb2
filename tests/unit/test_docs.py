"""Every command the README and docs/ show in a `sh` block is run or checked by a test, so the
docs cannot rot: the README's first deployment is run as written in a clean bookworm
(tests/package/test_deb.py); every other `cloudvip` command line must parse with the real parser,
and its command must be run by a named test; `make` targets must exist (and `make lab`'s
arguments parse); units, example files and the package's name must be the ones we ship."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest

from cloudvip import __version__
from cloudvip.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a test that runs each command for real (with its own config, in namespaces)
RUN_BY = {
    "check-config": "tests/unit/test_cli.py",
    "run": "tests/netns/test_service_netns.py",
    "status": "tests/netns/test_control.py",
    "takeover": "tests/netns/test_control.py",
    "release": "tests/netns/test_control.py",
    "doctor": "tests/netns/test_doctor_netns.py",
    "companion": "tests/aws/test_companion.py",
    "notify": "tests/aws/test_companion.py",
    "lab": "tests/netns/test_lab.py",
}
MAKE_TARGETS_RUN_BY_CI = {"test", "dist", "package-test", "lab", "check"}


def commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"^```sh\n(.*?)^```", doc.read_text(), re.S | re.M):
            for line in block.splitlines():
                command = re.split(r"\s#|^#", line)[0].strip()
                if command:
                    found.append((doc.relative_to(ROOT).as_posix(), command))
    return found


def variants(command: str) -> list[list[str]]:
    """`cloudvip status [-f FILE] [--json]` as every command line it stands for."""
    optional = re.findall(r"\[([^\]]+)\]", command)
    base = re.sub(r"\s*\[[^\]]+\]", "", command)
    out = []
    for n in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, n):
            words = shlex.split(base) + [w for part in chosen for w in shlex.split(part)]
            out.append([w.replace("FILE", "/etc/keepalived/keepalived.conf") for w in words])
    return out


def test_the_docs_show_commands() -> None:
    assert len(commands()) >= 20


@pytest.mark.parametrize("doc, command", commands(), ids=[f"{d}:{c}" for d, c in commands()])
def test_every_documented_command_is_run_or_checked(doc: str, command: str) -> None:
    words = shlex.split(command)
    if words[0] == "cloudvip":
        for argv in variants(command):
            args = build_parser().parse_args(argv[1:])  # exits (SystemExit) on anything it does not accept
            test = ROOT / RUN_BY[args.command]
            assert f'"{args.command}"' in test.read_text(), f"{test} does not run `cloudvip {args.command}`"
    elif words[0] == "make":
        target = words[1]
        assert re.search(rf"^{re.escape(target)}:", (ROOT / "Makefile").read_text(), re.M), target
        assert target in MAKE_TARGETS_RUN_BY_CI, target
        for assignment in words[2:]:
            name, _, value = assignment.partition("=")
            if name == "LAB_ARGS":
                build_parser().parse_args(["lab", *shlex.split(value)])
            else:
                assert name == "EXTRAS" and set(value.split(",")) <= {"aws", "hetzner", "gcp", "azure"}, name
    elif words[:2] == ["systemctl", "enable"]:
        assert (ROOT / "systemd" / f"{words[-1]}.service").is_file(), words[-1]
    elif words[:2] == ["apt", "install"]:
        assert words[2] == f"./cloudvip_{__version__}_amd64.deb", "the package make dist builds"
    elif words[0] == "cp" and words[1].startswith("/usr/share/doc/cloudvip/examples/"):
        name = Path(words[1]).name
        assert (ROOT / "examples" / name).is_file() and f"examples/{name}" in (ROOT / "debian/rules").read_text()
    else:
        pytest.fail(f"{doc}: `{command}`: no test runs or checks this command; add it to tests/unit/test_docs.py")


def test_the_readme_first_deployment_is_run_by_the_package_test() -> None:
    package_test = (ROOT / "tests/package/test_deb.py").read_text()
    assert "def test_the_readme_first_deployment_runs" in package_test and '"## First deployment"' in package_test
