"""Every keyword keepalived 2.4.3's VRRP and global parsers install (tests/data/, made by
tests/keepalived_keywords.py from its source) is known to cloudvip: implemented, or warned about
by name as not implemented. None is an "unknown keyword", and none is dropped silently."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from cloudvip.config import ConfigError, loads
from cloudvip.config import not_implemented as table

KEYWORDS = [tuple(line.split()) for line in
            (Path(__file__).parent.parent / "data" / "keepalived-2.4.3-keywords.txt").read_text().splitlines()]
INSTANCE = ("vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {{\n 192.0.2.10\n }}\n"
            "{body}\n}}\n")
#: the blocks inside which cloudvip reads keywords one by one; inside the others (a vrrp_track_process,
#: a garp_group ...), the block itself is the keyword warned about
READ = {"-", "global_defs", "vrrp_instance", "vrrp_instance/authentication", "vrrp_instance/auth_hmac", "vrrp_script",
        "vrrp_sync_group", "vrrp_track_process"}


def snippet(section: str, keyword: str) -> str:
    line = f"{keyword} 1"
    return {
        "-": f"{keyword}\n" + INSTANCE.format(body=""),
        "global_defs": f"global_defs {{\n {line}\n}}\n" + INSTANCE.format(body=""),
        "vrrp_instance": INSTANCE.format(body=line),
        "vrrp_instance/authentication": INSTANCE.format(body=f"authentication {{\n {line}\n }}"),
        "vrrp_instance/auth_hmac": INSTANCE.format(body=f"auth_hmac {{\n {line}\n }}"),
        "vrrp_script": f"vrrp_script s {{\n script /bin/true\n {line}\n}}\n" + INSTANCE.format(body=""),
        "vrrp_sync_group": f"vrrp_sync_group G {{\n group {{\n VI_1\n }}\n {line}\n}}\n" + INSTANCE.format(body=""),
        "vrrp_track_process": f"vrrp_track_process p {{\n process x\n {line}\n}}\n" + INSTANCE.format(body=""),
    }[section]


def diagnostics(text: str) -> list[str]:
    try:
        return [str(d) for d in loads(text, "k.conf").diagnostics]
    except ConfigError as exc:
        return [str(d) for d in exc.diagnostics]


@pytest.mark.parametrize("section,keyword", [k for k in KEYWORDS if k[0] in READ], ids=" ".join)
def test_every_keepalived_keyword_is_known(section: str, keyword: str) -> None:
    said = diagnostics(snippet(section, keyword))
    assert not any(f"unknown keyword '{keyword}'" in d for d in said), said


def test_the_blocks_cloudvip_does_not_read_are_warned_about_by_name() -> None:
    blocks = sorted({k[0].split("/")[0] for k in KEYWORDS if k[0] not in READ} - {"vrrp_instance"})
    for block in blocks:
        assert block in table.TOP, block


def test_coverage_figures(record_property: Callable[[str, object], None]) -> None:
    """The counts docs/configuration.md's compatibility section gives (VRRP and global sections)."""
    warned = [k for k in KEYWORDS if k[1] in {**table.TOP, **table.GLOBAL, **table.INSTANCE, **table.SYNC_GROUP}
              and k[0] in ("-", "global_defs", "vrrp_instance", "vrrp_sync_group")]
    inside_warned_blocks = [k for k in KEYWORDS if k[0] not in READ]
    implemented = len(KEYWORDS) - len(warned) - len(inside_warned_blocks)
    assert implemented > 0 and len(KEYWORDS) == 272
    record_property("figure", f"keepalived 2.4.3 keywords (VRRP and global parsers): {len(KEYWORDS)}; "
                              f"implemented {implemented}, warned about by name {len(warned)} (and "
                              f"{len(inside_warned_blocks)} inside blocks warned about as a whole), unknown 0")
