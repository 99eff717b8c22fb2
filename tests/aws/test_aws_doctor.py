"""`cloudvip doctor` on AWS against emulated EC2 (IAM decisions as the emulator's DENIED models
them): a clean world gives no ✘, and each classic mistake is found and comes with its fix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import pytest

from cloudvip.doctor.findings import Finding, Status
from cloudvip.doctor.run import Options, diagnose
from cloudvip_providers.aws import AwsProvider

from cloudvip_lab import ec2_emulator
from cloudvip_lab.ec2_emulator import DENIED

from ..fake_host import build, doctor_findings, failed
from .conftest import REGION, Ec2World

VIP = "198.51.100.100"
PEER = "198.51.100.12"


@pytest.fixture(autouse=True)
def iam_endpoints(ec2: Ec2World, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """STS and IAM answered by the same emulator (botocore's per-service endpoint variables)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", ec2.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", ec2.endpoint)
    yield
    DENIED.clear()


def doctor(ec2: Ec2World, mode: str = "secondary_ip", extra: str = "", vip: str = VIP) -> list[Finding]:
    cloud = (f"        mode {mode}\n        instance_id {ec2.instances[0]}\n        eni {ec2.enis[0]}\n"
             f"        region {REGION}\n        endpoint {ec2.endpoint}\n{extra}")
    text = f"""vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    unicast_peer {{
        {PEER}
    }}
    virtual_ipaddress {{
        {vip}/32
    }}
    cloud aws {{
{cloud}
    }}
}}
"""
    return doctor_findings(build(AwsProvider, text)[0])


def test_a_clean_secondary_ip_setup_passes(ec2: Ec2World) -> None:
    findings = doctor(ec2)
    assert failed(findings) == []
    text = "\n".join(f"{f.check} {f.found}" for f in findings)
    assert "ec2:DescribeNetworkInterfaces: allowed (dry run)" in text
    assert "ec2:AssignPrivateIpAddresses: allowed (policy simulation of" in text
    assert f"{PEER} -> this node: protocol 112 allowed" in text
    assert "inside" in text and "hop limit 2, tokens required" in text


def test_no_write_happens(ec2: Ec2World) -> None:
    """Every check that names a write is a dry run or a simulation: the cloud is as before."""
    for mode, extra in (("secondary_ip", ""), ("elastic_ip", f"        allocation_id {ec2.allocation_id}\n"),
                        ("route_table", f"        route_tables {ec2.route_table}\n")):
        doctor(ec2, mode, extra, vip=ec2_emulator.OVERLAY_VIP if mode == "route_table" else VIP)
    assert ec2_emulator.writes() == {}
    assert ec2.vip_enis(VIP) == [] and ec2.eip_eni() == "" and ec2.route_eni() == ""


def test_a_denied_write_is_named_with_its_resource_and_the_policy_fix(ec2: Ec2World) -> None:
    DENIED.add("AssociateAddress")
    f = failed(doctor(ec2, "elastic_ip", f"        allocation_id {ec2.allocation_id}\n"))
    assert len(f) == 1 and f[0].check == "iam"
    assert "ec2:AssociateAddress on " + ec2.allocation_id in f[0].found and "DENIED" in f[0].found
    assert '"Action": "ec2:AssociateAddress"' in f[0].fix and f"elastic-ip/{ec2.allocation_id}" in f[0].fix


def test_route_mode_checks_both_route_calls_and_the_source_dest_check(ec2: Ec2World) -> None:
    DENIED.add("ReplaceRoute")
    f = failed(doctor(ec2, "route_table", f"        route_tables {ec2.route_table}\n", vip=ec2_emulator.OVERLAY_VIP))
    checks = {x.check: x for x in f}
    assert "ReplaceRoute" in checks["iam"].found
    # moto's ENIs keep the source/destination check on, as EC2's do by default
    assert "--no-source-dest-check" in checks["source/dest check"].fix
    ec2.client.modify_network_interface_attribute(NetworkInterfaceId=ec2.enis[0], SourceDestCheck={"Value": False})
    DENIED.clear()
    assert failed(doctor(ec2, "route_table", f"        route_tables {ec2.route_table}\n",
                         vip=ec2_emulator.OVERLAY_VIP)) == []


def test_assign_without_dry_run_is_simulated_and_a_denial_found(ec2: Ec2World) -> None:
    DENIED.add("AssignPrivateIpAddresses")
    f = failed(doctor(ec2))
    assert len(f) == 1 and "ec2:AssignPrivateIpAddresses: implicitDeny" in f[0].found
    assert f"network-interface/{ec2.enis[0]}" in f[0].fix


def test_when_the_simulation_is_not_allowed_it_says_so_and_does_not_guess(ec2: Ec2World) -> None:
    DENIED.add("SimulatePrincipalPolicy")
    findings = doctor(ec2)
    assert failed(findings) == []
    w = next(f for f in findings if "AssignPrivateIpAddresses" in f.found)
    assert w.status is Status.WARN and "not checked" in w.found


def test_a_vip_outside_the_subnet(ec2: Ec2World) -> None:
    f = failed(doctor(ec2, vip="198.51.7.9"))
    assert [x.check for x in f] == ["subnet"] and "outside" in f[0].found


def test_a_security_group_without_vrrp(ec2: Ec2World) -> None:
    """The pair's group without its protocol-112 rule: both directions fail, with the rule to add."""
    eni = ec2.client.describe_network_interfaces(NetworkInterfaceIds=[ec2.enis[0]])["NetworkInterfaces"][0]
    sg = eni["Groups"][0]["GroupId"]
    rule = {"IpProtocol": "112", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [{"GroupId": sg}]}
    ec2.client.revoke_security_group_ingress(GroupId=sg, IpPermissions=[rule])
    ec2.client.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    f = failed(doctor(ec2))
    assert [x.check for x in f] == ["security group", "security group"]
    assert f"--group-id {sg}" in f[0].fix and "IpProtocol=112" in f[0].fix
    ec2.client.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "112", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "198.51.100.0/24"}]}])
    assert failed(doctor(ec2)) == []


def test_an_unknown_allocation(ec2: Ec2World) -> None:
    f = failed(doctor(ec2, "elastic_ip", "        allocation_id eipalloc-0123456789abcdef0\n"))
    assert f and all("eipalloc-0123456789abcdef0" in x.found for x in f)


def test_the_whole_doctor_survives_an_unreachable_imds(tmp_path: Path) -> None:
    """`cloudvip doctor` end to end (host in this namespace, on lo): IMDS unreachable makes the
    start fail, said twice with its fixes; peer discovery is not attempted without a start."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text("""vrrp_instance VI_1 {
    interface lo
    virtual_router_id 51
    unicast_src_ip 127.0.0.1
    virtual_ipaddress {
        198.51.100.100/32
    }
    cloud aws {
        mode secondary_ip
        imds_endpoint http://127.0.0.1:9
        peer_tag cloudvip:group=web
    }
}
""")
    findings = asyncio.run(diagnose(conf, opts=Options(listen=False, rulesets=lambda: ([], []))))
    checks = [f.check for f in failed(findings)]
    assert checks == ["imds", "aws start"], findings


def test_peers_found_by_tag_get_their_security_groups_checked(ec2: Ec2World) -> None:
    """No unicast_peer: peer_tag finds the other instance, and the security groups are checked
    between this node and it (found before the network checks, not after)."""
    ec2.client.create_tags(Resources=ec2.instances, Tags=[{"Key": "cloudvip:group", "Value": "web"}])
    cloud = (f"        mode secondary_ip\n        instance_id {ec2.instances[0]}\n        eni {ec2.enis[0]}\n"
             f"        region {REGION}\n        endpoint {ec2.endpoint}\n        peer_tag cloudvip:group=web\n")
    text = (f"vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n    virtual_ipaddress {{\n"
            f"        {VIP}/32\n    }}\n    cloud aws {{\n{cloud}    }}\n}}\n")
    findings = doctor_findings(build(AwsProvider, text)[0])
    assert failed(findings) == []
    assert any(f.check == "peer discovery" and f.found == f"found {PEER}" for f in findings)
    assert any(f.found == f"{PEER} -> this node: protocol 112 allowed" for f in findings)
