"""keepalived 2.4.3's own sample configurations (tests/data/keepalived-2.4.3-samples/, its
doc/samples): `cloudvip check-config` against `keepalived -t` of 2.4.3 on each, in a namespace
with the interfaces the samples name.

Agreement: a file keepalived accepts, cloudvip accepts; every line keepalived reports something
about (its "(FILE: Line N)" messages), cloudvip reports something about too: on that line, or on
the statement whose block holds it (cloudvip names an ignored block once, where it starts;
keepalived may speak of a block where it ends); cloudvip refuses a file only for what it cannot
run (CANNOT_RUN). keepalived -t also exits non-zero for the configuration errors it then runs
through with a fallback: there cloudvip warns and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip_lab.topology import ip

from ..keepalived_builds import KEEPALIVED24, needs_keepalived24
from .conftest import needs_root

SAMPLES = sorted((Path(__file__).parent.parent / "data" / "keepalived-2.4.3-samples").glob("keepalived.conf.*"))
INTERFACES = ("eth0", "eth1", "eth2", "eth3", "eth0.1")
#: what cloudvip refuses although keepalived runs it
CANNOT_RUN = ("auth_type AH: cloudvip does not speak IPsec AH",)
LINE = re.compile(r"\((?:[^:()]*: )?Line (\d+)\)")

pytestmark = [needs_root, needs_keepalived24]


def block_spans(text: str) -> dict[int, int]:
    """For each line that opens a block (its `{` on it or on the next line), the block's last line."""
    spans: dict[int, int] = {}
    stack: list[int] = []
    last_statement = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"[#!].*", "", raw).strip()
        if line and line != "{":
            last_statement = n
        for c in line:
            if c == "{":
                stack.append(last_statement)
            elif c == "}" and stack:
                spans[stack.pop()] = n
    return spans


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    name = f"cvks{os.getpid()}"
    ip("netns", "add", name)
    try:
        for i, ifname in enumerate(INTERFACES):
            ip("-n", name, "link", "add", ifname, "type", "veth", "peer", "name", f"ksp{i}")
            ip("-n", name, "link", "set", ifname, "up")
            ip("-n", name, "addr", "add", f"192.168.{200 + i}.1/24", "dev", ifname)
        yield name
    finally:
        ip("netns", "del", name, check=False)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_check_config_agrees_with_keepalived_24(netns: str, sample: Path) -> None:
    ka = subprocess.run(["ip", "netns", "exec", netns, KEEPALIVED24, "-t", "-l", "-f", str(sample)],
                        capture_output=True, text=True, timeout=60, cwd=sample.parent)
    cv = subprocess.run([sys.executable, "-m", "cloudvip", "check-config", "-f", str(sample),
                         "--no-keepalived-check"], capture_output=True, text=True, timeout=60)
    said = cv.stdout + cv.stderr
    assert "Traceback" not in said and cv.returncode in (0, 1), said
    errors = [line for line in said.splitlines() if re.match(r".*:\d+: (?!warning:)", line)]
    if cv.returncode == 1:
        assert errors and all(any(c in e for c in CANNOT_RUN) for e in errors), said
    elif ka.returncode == 0:
        assert cv.returncode == 0, said
    ka_lines = {int(n) for n in LINE.findall(ka.stdout + ka.stderr)}
    spans = block_spans(sample.read_text())
    cv_lines = {line for n in re.findall(rf"{re.escape(str(sample))}:(\d+):", said)
                for line in range(int(n), spans.get(int(n), int(n)) + 1)}
    assert ka_lines <= cv_lines, (f"keepalived reports lines {sorted(ka_lines - cv_lines)} that cloudvip "
                                  f"does not:\n{ka.stdout}{ka.stderr}\n--- cloudvip:\n{said}")
