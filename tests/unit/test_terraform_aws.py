"""examples/terraform/aws: parses (python-hcl2), creates what the README says, keeps IAM and the
security group tight, and renders a keepalived.conf that cloudvip accepts for both modes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cloudvip.provider import load_checked

from ..terraform import checkov, checkov_failures, render, startup_script, unq
from ..terraform import blocks as tf_blocks

pytest.importorskip("hcl2")

TF = Path(__file__).resolve().parents[2] / "examples" / "terraform" / "aws"


def blocks(kind: str) -> dict[str, dict[str, Any]]:
    return tf_blocks(TF, kind)


def test_the_module_parses_and_creates_the_pair() -> None:
    resources = blocks("resource")
    for name in ("aws_instance.node", "aws_security_group.pair", "aws_vpc_security_group_ingress_rule.vrrp",
                 "aws_vpc_security_group_egress_rule.vrrp", "aws_iam_role.cloudvip",
                 "aws_iam_instance_profile.cloudvip", "aws_iam_role_policy.cloudvip",
                 "aws_ec2_subnet_cidr_reservation.vip", "aws_eip.vip"):
        assert name in resources, name
    node = resources["aws_instance.node"]
    assert "${local.nodes}" == node["for_each"]
    assert unq(node["metadata_options"][0]["http_tokens"]) == "required"  # IMDSv2 only
    assert "install-cloudvip.sh.tftpl" in node["user_data"] and "cloudvip_package" in node["user_data"]


def test_vrrp_is_allowed_between_the_pair_only() -> None:
    resources = blocks("resource")
    for direction in ("ingress", "egress"):
        rule = resources[f"aws_vpc_security_group_{direction}_rule.vrrp"]
        assert unq(rule["ip_protocol"]) == "112"
        assert rule["referenced_security_group_id"] == "${aws_security_group.pair.id}"
        assert "cidr_ipv4" not in rule
    for name, body in resources.items():  # nothing else opens protocol 112 or everything
        if name.startswith("aws_vpc_security_group_") and not name.endswith(".vrrp"):
            assert unq(body["ip_protocol"]) not in ("112", "-1", "all"), name


def test_iam_is_least_privilege() -> None:
    policy = blocks("data")["aws_iam_policy_document.cloudvip"]
    statements = list(policy["statement"]) + [d[k]["content"][0] for d in policy["dynamic"] for k in d]
    actions_seen: set[str] = set()
    for st in statements:
        actions = st["actions"]
        names = re.findall(r"ec2:\w+", actions if isinstance(actions, str) else " ".join(actions))
        actions_seen.update(names)
        resources = st["resources"]
        if resources == ['"*"']:  # Describe* has no resource-level permissions: the only wildcard
            assert all(a.startswith("ec2:Describe") for a in names), st
            assert unq(st["condition"][0]["variable"]) == "aws:RequestedRegion"
        else:
            assert "*" not in str(resources).replace("${", "").replace("[*]", ""), st
    assert {"ec2:AssignPrivateIpAddresses", "ec2:AssociateAddress", "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeInstances", "ec2:DescribeAddresses"} <= actions_seen
    # a backup never removes the VIP from anyone: no permission to do so
    assert not actions_seen & {"ec2:UnassignPrivateIpAddresses", "ec2:DisassociateAddress"}
    # doctor simulates this role's own policy (AssignPrivateIpAddresses has no DryRun), nothing else's
    simulate = [st for st in statements if "iam:SimulatePrincipalPolicy" in str(st["actions"])]
    assert len(simulate) == 1 and simulate[0]["resources"] == ["${aws_iam_role.cloudvip.arn}"]


@pytest.mark.parametrize("mode, vip, allocation", [("secondary_ip", "10.0.1.250/24", ""),
                                                     ("elastic_ip", "", "eipalloc-0123456789abcdef0")])
def test_the_rendered_keepalived_conf_is_valid(mode: str, vip: str, allocation: str, tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render((TF / "keepalived.conf.tftpl").read_text(), router_id="cloudvip-web-a",
                           interface="ens5", priority=100, vrid=51, mode=mode, vip=vip, allocation_id=allocation,
                           group="web"))
    cfg = load_checked(conf)  # what check-config does, the aws block included: raises on any error
    inst = cfg.instances[0]
    assert inst.priority == 100 and inst.cloud is not None and inst.cloud.provider == "aws"
    entries = {e.key: e.values for e in inst.cloud.entries}
    assert entries["mode"] == (mode,) and entries["peer_tag"] == ("cloudvip:group=web",)
    assert not [d for d in cfg.diagnostics if "unknown" in d.message]
    assert [str(v.address) for v in inst.vips] == ([vip.split("/")[0]] if vip else [])
    assert not inst.unicast_peers  # found by tag


def test_user_data_installs_and_enables_the_unit() -> None:
    text = startup_script(pip_package="cloudvip[aws]")
    assert "pip install -q 'cloudvip[aws]'" in text
    assert "cloudvip check-config -f /etc/keepalived/keepalived.conf" in text
    assert "systemctl enable --now cloudvip" in text
    assert "ExecStart=/usr/local/bin/cloudvip run" in text
    # the pre-flight table is logged once the agent runs (it can hear the peer then); never fatal
    assert text.index("cloudvip doctor -f /etc/keepalived/keepalived.conf") > text.index("enable --now cloudvip")
    assert "logger -t cloudvip-doctor" in text


@pytest.mark.skipif(checkov() is None, reason="checkov not installed (make test installs it into .venv-checkov)")
def test_checkov_finds_nothing(tmp_path: Path) -> None:
    passed, failed, stderr = checkov_failures(TF, tmp_path)
    assert not failed and passed > 30, (failed, stderr)
