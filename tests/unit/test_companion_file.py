"""The companion file: cloud blocks outside keepalived.conf, loaded together with it, with
FILE:LINE errors for whichever file is wrong; warnings for cloudvip-only keywords in a
keepalived.conf meant for the stock keepalived."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudvip.cli import main
from cloudvip.config import ConfigError, load
from cloudvip.config.companion_file import keepalived_accepts
from cloudvip.provider import load_checked

DATA = Path(__file__).parent.parent / "data" / "companion"

INSTANCE = """vrrp_instance {name} {{
    interface eth0
    virtual_router_id {vrid}
{vips}    notify "/usr/local/bin/cloudvip notify"
}}
"""


def pair(tmp_path: Path, companion: str, instances: str = "") -> Path:
    kconf = tmp_path / "keepalived.conf"
    kconf.write_text(instances or INSTANCE.format(name="VI_1", vrid=51,
                                                  vips="    virtual_ipaddress {\n        10.0.1.100/24\n    }\n"))
    conf = tmp_path / "companion.conf"
    conf.write_text(companion)
    return conf


CLOUD = "vrrp_instance VI_1 {\n    cloud aws {\n        mode secondary_ip\n    }\n}\n"


def test_the_readme_layout_loads_as_one_config() -> None:
    cfg = load_checked(DATA / "companion.conf", config_id="lb1")
    assert cfg.keepalived_conf == DATA / "keepalived.conf"
    inst = cfg.instance("VI_1")
    assert inst.cloud is not None and inst.cloud.provider == "aws"
    assert inst.cloud.loc.file.endswith("companion.conf")  # errors in the block point at the companion file
    assert str(inst.vips[0].interface) == "10.0.1.100/24" and inst.priority == 100  # the rest is keepalived's
    assert cfg.global_defs.script_user == "keepalived_script"
    assert not [d for d in cfg.diagnostics if "cloudvip-only" in d.message]
    assert set(cfg.files) >= {DATA / "companion.conf", DATA / "keepalived.conf"}


def test_cloudvip_only_keywords_in_a_keepalived_conf_for_stock_keepalived_are_warned() -> None:
    cfg = load(DATA / "keepalived-cloud-inside.conf")  # calls `cloudvip notify`: meant for stock keepalived
    warned = [str(d) for d in cfg.diagnostics if "cloudvip-only" in d.message]
    assert warned == [f"{DATA / 'keepalived-cloud-inside.conf'}:33: warning: vrrp_instance VI_1: cloud block is "
                      "cloudvip-only: stock keepalived rejects it (`keepalived -t` fails) or drops what follows; "
                      "put cloud blocks in the companion file instead"]


def test_an_agent_config_with_a_cloud_block_is_not_warned(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    text = INSTANCE.format(name="VI_1", vrid=51, vips="    virtual_ipaddress {\n        10.0.1.100/24\n    }\n")
    conf.write_text(text.replace('    notify "/usr/local/bin/cloudvip notify"\n',
                                 "    cloud aws {\n        mode secondary_ip\n    }\n"))
    assert not [d for d in load(conf).diagnostics if "cloudvip-only" in d.message]


@pytest.mark.parametrize("companion,instances,error", [
    (CLOUD.replace("VI_1", "VI_9"), "",
     "companion.conf:1: vrrp_instance VI_9 is not in {dir}/keepalived.conf (expected one of its instances: VI_1)"),
    (CLOUD, INSTANCE.format(name="VI_1", vrid=51, vips=""),
     "companion.conf:1: vrrp_instance VI_1 of {dir}/keepalived.conf has no virtual_ipaddress"),
    ("vrrp_instance VI_1 {\n    priority 100\n}\n", "",
     "companion.conf:2: 'priority' does not belong in the companion file"),
    ("global_defs {\n}\n" + CLOUD, "", "companion.conf:1: unknown keyword 'global_defs' in a companion file"),
    (CLOUD + CLOUD, "", "companion.conf:6: vrrp_instance VI_1 is named twice"),
    (CLOUD.replace("mode secondary_ip", "mode teleport"), "", "companion.conf:3: "),
    ("keepalived_config nowhere.conf\n" + CLOUD, "", "companion.conf:1: keepalived_config {dir}/nowhere.conf: "),
])
def test_errors_name_the_file_and_line(tmp_path: Path, companion: str, instances: str, error: str) -> None:
    if not companion.startswith("keepalived_config"):
        companion = "keepalived_config keepalived.conf\n" + companion
        error = error.replace("companion.conf:", "companion.conf:+")
    conf = pair(tmp_path, companion, instances)
    with pytest.raises(ConfigError) as exc:
        load_checked(conf)
    text = str(exc.value)
    expected = error.format(dir=tmp_path)
    if "+" in expected:  # one line was prepended
        head, tail = expected.split("+", 1)
        line, rest = tail.split(":", 1)
        expected = f"{head}{int(line) + 1}:{rest}"
    assert expected in text, text


def test_errors_in_keepalived_conf_point_at_keepalived_conf(tmp_path: Path) -> None:
    conf = pair(tmp_path, "keepalived_config keepalived.conf\n" + CLOUD,
                "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 300\n}\n")
    with pytest.raises(ConfigError, match=r"keepalived\.conf:3: "):
        load_checked(conf)


def test_no_keepalived_installed_is_no_verdict() -> None:
    verdict = keepalived_accepts(DATA / "keepalived.conf", "no-such-keepalived")
    assert not verdict.ran


def test_check_config_summarises_the_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--no-keepalived-check", "-f", str(DATA / "companion.conf")]) == 0
    out = capsys.readouterr().out
    assert f"companion.conf: OK, 1 instance (companion file for {DATA / 'keepalived.conf'})" in out
    assert "cloud: aws" in out


def test_an_instance_without_a_way_to_hear_master_rx_lower_pri_is_named(tmp_path: Path) -> None:
    cfg = load_checked(pair(tmp_path, "keepalived_config keepalived.conf\n" + CLOUD))
    assert [d.message for d in cfg.diagnostics if "notify_master_rx_lower_pri" in d.message] == [
        "vrrp_instance VI_1 has no notify_master_rx_lower_pri (and there is no notify_fifo): after a partition the "
        "VIP may stay with the node that steps down until the split-brain hold ends; add notify_master_rx_lower_pri "
        '"/usr/local/bin/cloudvip notify master_rx_lower_pri VI_1"']
