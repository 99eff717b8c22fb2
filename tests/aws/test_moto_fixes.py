"""The corrections of tests/aws/moto_fixes.py: EC2's documented semantics, pinned."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from .conftest import Ec2World

VIP = "198.51.100.100"


def holders(ec2: Ec2World, ip: str) -> list[str]:
    found = ec2.client.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": [ip]}])["NetworkInterfaces"]
    return [ni["NetworkInterfaceId"] for ni in found]


def test_filter_finds_secondary_ips(ec2: Ec2World) -> None:
    ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[0], PrivateIpAddresses=[VIP])
    assert holders(ec2, VIP) == [ec2.enis[0]]
    assert holders(ec2, "198.51.100.12") == [ec2.enis[1]]  # primaries still match


def test_allow_reassignment_moves_the_ip(ec2: Ec2World) -> None:
    ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[0], PrivateIpAddresses=[VIP])
    ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[1], PrivateIpAddresses=[VIP],
                                           AllowReassignment=True)
    assert holders(ec2, VIP) == [ec2.enis[1]]


def test_without_allow_reassignment_an_ip_in_use_is_refused(ec2: Ec2World) -> None:
    ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[0], PrivateIpAddresses=[VIP])
    with pytest.raises(ClientError) as exc:
        ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[1], PrivateIpAddresses=[VIP])
    assert exc.value.response["Error"]["Code"] == "PrivateIpAddressInUse"
    assert holders(ec2, VIP) == [ec2.enis[0]]
