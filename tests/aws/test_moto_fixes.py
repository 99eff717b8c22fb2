"""The corrections of lab/cloudvip_lab/ec2_emulator.py: EC2's documented semantics, pinned."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from cloudvip_lab.ec2_emulator import CALLS, FAULTS, writes

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


def test_a_filter_of_several_addresses_finds_every_eni_with_any_of_them(ec2: Ec2World) -> None:
    # the peer lookup asks for all peers' primaries at once; moto wanted the ENI's addresses to
    # be a subset or superset of the values, so an ENI holding the VIP too was left out
    ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[1], PrivateIpAddresses=[VIP])
    found = ec2.client.describe_network_interfaces(Filters=[
        {"Name": "addresses.private-ip-address", "Values": ["198.51.100.11", "198.51.100.12"]}])
    assert sorted(ni["NetworkInterfaceId"] for ni in found["NetworkInterfaces"]) == sorted(ec2.enis)


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


def test_elastic_ip_binds_the_given_private_ip_and_names_the_instance(ec2: Ec2World) -> None:
    ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[1], PrivateIpAddresses=[VIP])
    ec2.client.associate_address(AllocationId=ec2.allocation_id, NetworkInterfaceId=ec2.enis[1],
                                 PrivateIpAddress=VIP, AllowReassociation=True)
    addr = ec2.client.describe_addresses(AllocationIds=[ec2.allocation_id])["Addresses"][0]
    assert (addr["NetworkInterfaceId"], addr["PrivateIpAddress"], addr["InstanceId"]) == \
        (ec2.enis[1], VIP, ec2.instances[1])
    found = ec2.client.describe_addresses(Filters=[{"Name": "private-ip-address", "Values": [VIP]}])["Addresses"]
    assert [a["AllocationId"] for a in found] == [ec2.allocation_id]


def test_elastic_ip_refuses_a_private_ip_the_eni_does_not_have(ec2: Ec2World) -> None:
    with pytest.raises(ClientError) as exc:
        ec2.client.associate_address(AllocationId=ec2.allocation_id, NetworkInterfaceId=ec2.enis[1],
                                     PrivateIpAddress="198.51.100.11", AllowReassociation=True)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValue"
    addr = ec2.client.describe_addresses(AllocationIds=[ec2.allocation_id])["Addresses"][0]
    assert not addr.get("NetworkInterfaceId")


def test_elastic_ip_without_private_ip_binds_the_primary(ec2: Ec2World) -> None:
    ec2.client.associate_address(AllocationId=ec2.allocation_id, NetworkInterfaceId=ec2.enis[0])
    addr = ec2.client.describe_addresses(AllocationIds=[ec2.allocation_id])["Addresses"][0]
    assert (addr["PrivateIpAddress"], addr["InstanceId"]) == ("198.51.100.11", ec2.instances[0])


def test_create_route_refuses_a_destination_the_table_already_has(ec2: Ec2World) -> None:
    route = {"RouteTableId": ec2.route_table, "DestinationCidrBlock": f"{VIP}/32"}
    ec2.client.create_route(NetworkInterfaceId=ec2.enis[0], **route)
    with pytest.raises(ClientError) as exc:
        ec2.client.create_route(NetworkInterfaceId=ec2.enis[1], **route)
    assert exc.value.response["Error"]["Code"] == "RouteAlreadyExists"
    routes = ec2.client.describe_route_tables(RouteTableIds=[ec2.route_table])["RouteTables"][0]["Routes"]
    assert [r.get("NetworkInterfaceId") for r in routes if r.get("DestinationCidrBlock") == f"{VIP}/32"] == [
        ec2.enis[0]]


def test_injected_faults_are_answered_in_order_and_recorded(ec2: Ec2World) -> None:
    FAULTS["AssignPrivateIpAddresses"] = [("RequestLimitExceeded", 503)]
    try:
        with pytest.raises(ClientError) as exc:
            ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[0], PrivateIpAddresses=[VIP])
        assert exc.value.response["Error"]["Code"] == "RequestLimitExceeded"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert holders(ec2, VIP) == []  # the faulted call did nothing
        ec2.client.assign_private_ip_addresses(NetworkInterfaceId=ec2.enis[0], PrivateIpAddresses=[VIP])
        assert writes() == {ec2.enis[0]: 1}  # only the successful write counts
        assert [(c.action, c.status) for c in CALLS if c.action == "AssignPrivateIpAddresses"] == \
            [("AssignPrivateIpAddresses", 503), ("AssignPrivateIpAddresses", 200)]
    finally:
        FAULTS.clear()
