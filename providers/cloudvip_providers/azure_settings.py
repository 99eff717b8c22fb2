"""The `cloud azure { ... }` block: parsed and checked without importing the Azure libraries.

    cloud azure {
        mode route_table                 # route_table (default advice) | ip_config
        subscription_id 00000000-0000-0000-0000-000000000000   # default: from IMDS
        resource_group rg-ha             # default: from IMDS (the VM's)
        vm_name node-1                   # default: from IMDS
        network_interface nic-node-1     # default: the NIC with our VRRP interface's MAC
        route_tables rt-app rt-web       # route_table: the tables (names in resource_group, or resource IDs)
        route_name cloudvip-vip          # route_table: the route's name (default: cloudvip-<VIP with dashes>)
        ip_config_name cloudvip-vip      # ip_config: the secondary IP configuration (default: cloudvip-<VIP>)
        endpoint https://management.azure.com   # ARM (default: Azure's public cloud)
        imds_endpoint http://169.254.169.254
        reconcile_interval 10            # seconds between ownership checks as master
        poll_interval 1                  # seconds between polls of a long-running operation
        operation_timeout 120            # seconds a whole operation may take (a NIC update: 30-90 s)
        peer_tag cloudvip-group=web      # fill unicast peers from the VMs with this tag
        peer_refresh 60
    }

Credentials: azure-identity's DefaultAzureCredential (on a VM, its managed identity through
IMDS; AZURE_CLIENT_ID/AZURE_TENANT_ID/... for a service principal): never in the config, never
logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloudvip.config.diagnostics import Diagnostics
from cloudvip.config.model import CloudBlock, VrrpInstance

from .cloud_settings import OPERATION_TIMEOUT, URL, BlockReader

MODES = ("route_table", "ip_config")
IMDS = "http://169.254.169.254"
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
#: ARM names: resource groups 1..90 of letters, digits, _ - . ( ) (not ending in .); NICs, route
#: tables, routes and IP configurations 1..80, starting with a letter or digit
GROUP = r"[-\w.()]{0,89}[-\w()]"
NAME = r"[A-Za-z0-9][-\w.]{0,78}[\w]|[A-Za-z0-9]"
VM = r"[A-Za-z0-9][-\w.]{0,63}"
TABLE_ID = rf"/subscriptions/{UUID}/resourceGroups/{GROUP}/providers/Microsoft\.Network/routeTables/(?:{NAME})"


@dataclass(frozen=True, slots=True)
class AzureSettings:
    mode: str
    subscription_id: str | None = None
    resource_group: str | None = None
    vm_name: str | None = None
    network_interface: str | None = None
    route_tables: tuple[str, ...] = ()
    route_name: str | None = None
    ip_config_name: str | None = None
    endpoint: str | None = None
    imds_endpoint: str = IMDS
    reconcile_interval: float = 10.0
    poll_interval: float = 1.0
    operation_timeout: float = 120.0
    peer_tag: tuple[str, str] | None = None
    peer_refresh: float = 60.0


def parse(block: CloudBlock, inst: VrrpInstance, diags: Diagnostics) -> AzureSettings | None:
    """Check the block (file:line errors into diags); the settings, or None if invalid."""
    r = BlockReader(block, diags, MODES)
    for e in r.entries():
        k = e.key
        if k == "subscription_id":
            r.matching(e, UUID, "a subscription id (a GUID)")
        elif k == "resource_group":
            r.matching(e, GROUP, "a resource group name: letters, digits, _ - . ( ), 1..90")
        elif k == "vm_name":
            r.matching(e, VM, "a VM name: letters, digits, _ - ., 1..64")
        elif k in ("network_interface", "route_name", "ip_config_name"):
            r.matching(e, NAME, "a name: letters, digits, _ - ., 1..80, starting with a letter or digit")
        elif k == "route_tables":
            bad = [v for v in e.values if not (re.fullmatch(NAME, v) or re.fullmatch(TABLE_ID, v))]
            if not e.values or bad:
                r.error(e, f"route_tables {' '.join(bad) or '(none)'} not valid",
                        "one or more route table names (in resource_group) or resource IDs "
                        "/subscriptions/ID/resourceGroups/RG/providers/Microsoft.Network/routeTables/NAME")
            r.fields[k] = tuple(e.values)
        elif k == "endpoint":
            # azure-core sends the bearer token over HTTPS only
            r.convert(e, "an HTTPS URL (ARM's token is never sent in clear), https://host[:port][/path]",
                      lambda v: v if URL.match(v) and v.startswith("https://") else None)
        elif k == "imds_endpoint":
            r.url(e)
        elif k == "reconcile_interval":
            r.seconds(e, 1, 3600)
        elif k == "poll_interval":
            r.seconds(e, 0.05, 30)
        elif k == "operation_timeout":
            r.seconds(e, *OPERATION_TIMEOUT)
        elif k == "peer_refresh":
            r.seconds(e, 10, 86400)
        elif k == "peer_tag":
            r.key_value(e, "cloudvip-group=web")
        else:
            r.unknown(e)
    if not inst.vips:
        r.error(None, "no VIP: list it in virtual_ipaddress", "the routed or secondary address in virtual_ipaddress")
    elif any(v.address.version != 4 for v in inst.vips):
        r.error(None, "routes and IP configurations move IPv4 addresses here", "IPv4 addresses in virtual_ipaddress")
    for key, mode in (("route_tables", "route_table"), ("route_name", "route_table"), ("ip_config_name", "ip_config")):
        if key in r.fields and r.mode not in (None, mode):
            r.error(None, f"{key} is for mode {mode}", f"mode {mode}, or no {key}")
    if r.mode == "route_table":
        r.require("route_tables", "mode route_table needs route_tables", "route_tables NAME [NAME ...]")
    if len(inst.vips) > 1:
        for key in ("route_name", "ip_config_name"):
            if key in r.fields:
                r.error(None, f"{key} names one resource: this instance has several VIPs",
                        f"no {key} (each VIP's is named cloudvip-A-B-C-D), or one VIP")
    if r.failed:
        return None
    return AzureSettings(**r.fields)  # type: ignore[arg-type]
