#!/usr/bin/env python3
"""The notify_master script an Azure user writes next to keepalived: cold-start Python with
azure-identity and azure-mgmt-network, the VM's managed identity, then the VIP's user-defined
route pointed at this VM (create or update, waiting for the long-running operation). Used by
bench/cloud_failover.py --cloud azure as the baseline of keepalived + script.

    azure_move_vip.py SUBSCRIPTION RESOURCE_GROUP ROUTE_TABLE VIP MY_IP ENDPOINT
"""

from __future__ import annotations

import sys

from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import Route


def main() -> int:
    subscription, group, table, vip, me, endpoint = sys.argv[1:7]
    client = NetworkManagementClient(ManagedIdentityCredential(), subscription, base_url=endpoint)
    route = Route(address_prefix=f"{vip}/32", next_hop_type="VirtualAppliance",  # type: ignore[call-overload]
                  next_hop_ip_address=me)
    client.routes.begin_create_or_update(group, table, "cloudvip-" + vip.replace(".", "-"), route,
                                         polling_interval=0.5).result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
