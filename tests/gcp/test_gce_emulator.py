"""The local Compute Engine API where failover depends on it, pinned with the real client."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.cloud import compute_v1

from cloudvip_lab.gce_emulator import PROJECT, ZONE, GceWorld


def client(gce: GceWorld) -> compute_v1.InstancesClient:
    import google.auth

    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/compute"])
    return compute_v1.InstancesClient(credentials=creds, transport="rest",
                                      client_options=ClientOptions(api_endpoint=gce.emulator.endpoint))


def nic0(c: compute_v1.InstancesClient, name: str) -> compute_v1.NetworkInterface:
    return c.get(project=PROJECT, zone=ZONE, instance=name).network_interfaces[0]


def update(c: compute_v1.InstancesClient, name: str, nic: compute_v1.NetworkInterface) -> None:
    c.update_network_interface_unary(project=PROJECT, zone=ZONE, instance=name, network_interface="nic0",
                                     network_interface_resource=nic)


def test_the_clients_empty_alias_list_removes_nothing(gce: GceWorld) -> None:
    """As the API does (googleapis/google-cloud-python#11931): the generated client drops an
    empty aliasIpRanges from the PATCH body, and a PATCH without it keeps the ranges."""
    c = client(gce)
    nic = nic0(c, "node1")
    nic.alias_ip_ranges = [compute_v1.AliasIpRange(ip_cidr_range="198.51.100.100/32")]
    update(c, "node1", nic)
    assert gce.holders("alias_ip", "198.51.100.100") == ["node1"]
    nic = nic0(c, "node1")
    nic.alias_ip_ranges = []
    update(c, "node1", nic)
    assert gce.holders("alias_ip", "198.51.100.100") == ["node1"]


def test_a_stale_fingerprint_and_a_range_in_use_are_refused(gce: GceWorld) -> None:
    c = client(gce)
    stale = nic0(c, "node1")
    fresh = nic0(c, "node1")
    fresh.alias_ip_ranges = [compute_v1.AliasIpRange(ip_cidr_range="198.51.100.100/32")]
    update(c, "node1", fresh)
    stale.alias_ip_ranges = []
    with pytest.raises(gexc.PreconditionFailed):
        update(c, "node1", stale)
    other = nic0(c, "node2")
    other.alias_ip_ranges = [compute_v1.AliasIpRange(ip_cidr_range="198.51.100.100/32")]
    with pytest.raises(gexc.BadRequest, match="already being used"):
        update(c, "node2", other)


def test_no_token_no_answer(gce: GceWorld) -> None:
    import requests

    r = requests.get(f"{gce.emulator.endpoint}/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/node1",
                     headers={"Authorization": "Bearer forged"}, timeout=5)
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
