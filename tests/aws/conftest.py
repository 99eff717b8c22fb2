"""EC2 emulated by moto's threaded server on 127.0.0.1, corrected where moto is wrong."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

REGION = "eu-central-1"


@dataclass
class Ec2World:
    endpoint: str
    client: Any
    subnet: str
    instances: list[str]
    enis: list[str]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from . import moto_fixes

    for var, val in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                     ("AWS_DEFAULT_REGION", REGION), ("AWS_EC2_METADATA_DISABLED", "true")):
        os.environ[var] = val  # never let botocore look for real credentials or IMDS
    moto_fixes.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def ec2(moto_endpoint: str) -> Ec2World:
    import requests

    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=5)
    client = boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint)
    vpc = client.create_vpc(CidrBlock="198.51.0.0/16")["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc, CidrBlock="198.51.100.0/24")["Subnet"]["SubnetId"]
    image = client.describe_images()["Images"][0]["ImageId"]
    instances, enis = [], []
    for ip in ("198.51.100.11", "198.51.100.12"):  # the lab namespaces use the same addresses
        inst = client.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                    SubnetId=subnet, PrivateIpAddress=ip)["Instances"][0]
        instances.append(inst["InstanceId"])
        enis.append(inst["NetworkInterfaces"][0]["NetworkInterfaceId"])
    return Ec2World(moto_endpoint, client, subnet, instances, enis)
