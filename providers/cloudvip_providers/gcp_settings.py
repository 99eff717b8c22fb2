"""The `cloud gcp { ... }` block: parsed and checked without importing the Google libraries.

    cloud gcp {
        mode alias_ip                    # alias_ip | route
        project my-project               # default: from the metadata server
        zone europe-west1-b              # default: from the metadata server
        instance node-1                  # default: from the metadata server
        network_interface nic0           # alias_ip: default: the NIC of the instance's interface (by MAC)
        zones europe-west1-b europe-west1-c   # where the VIP's holder is looked for (default: our zone)
        network default                  # route: the VPC network (default: our NIC's, from metadata)
        route_name cloudvip-vip          # route: the route's name (default: cloudvip-<VIP with dashes>)
        route_priority 100               # route: 0..65535 (lower wins), as in the VPC
        route_tags web lb                # route: instance tags the route applies to (default: all)
        endpoint https://compute.googleapis.com   # default: Google's
        metadata_endpoint http://metadata.google.internal/computeMetadata/v1
        reconcile_interval 10            # seconds between ownership checks as master
        poll_interval 0.5                # seconds between polls of a running operation
        operation_timeout 60             # seconds a whole operation (start, check, move) may take
        peer_label cloudvip-group=web    # fill unicast peers from instances with this label
        peer_refresh 60
    }

Credentials: google-auth's default chain (on a VM, its service account through the metadata
server; GOOGLE_APPLICATION_CREDENTIALS elsewhere): never in the config, never logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloudvip.config.diagnostics import Diagnostics
from cloudvip.config.model import CloudBlock, VrrpInstance

from .cloud_settings import OPERATION_TIMEOUT, BlockReader

MODES = ("alias_ip", "route")
METADATA = "http://metadata.google.internal/computeMetadata/v1"
#: Compute Engine's resource names (RFC 1035 labels) and zones
NAME = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
ZONE = r"[a-z]+-[a-z]+\d+-[a-z]"
PROJECT = r"[a-z][-a-z0-9]{4,28}[a-z0-9]"
LABEL = re.compile(r"^[a-z][-_a-z0-9]{0,62}$")


@dataclass(frozen=True, slots=True)
class GcpSettings:
    mode: str
    project: str | None = None
    zone: str | None = None
    instance: str | None = None
    network_interface: str | None = None
    zones: tuple[str, ...] = ()
    network: str | None = None
    route_name: str | None = None
    route_priority: int = 100
    route_tags: tuple[str, ...] = ()
    endpoint: str | None = None
    metadata_endpoint: str = METADATA
    reconcile_interval: float = 10.0
    poll_interval: float = 0.5
    operation_timeout: float = 60.0
    peer_label: tuple[str, str] | None = None
    peer_refresh: float = 60.0


def _label(value: str) -> tuple[str, str] | None:
    key, sep, val = value.partition("=")
    return (key, val) if sep and LABEL.match(key) and (not val or LABEL.match(val)) else None


def parse(block: CloudBlock, inst: VrrpInstance, diags: Diagnostics) -> GcpSettings | None:
    """Check the block (file:line errors into diags); the settings, or None if invalid."""
    r = BlockReader(block, diags, MODES)
    for e in r.entries():
        k = e.key
        if k == "project":
            r.matching(e, PROJECT, "a project id like my-project-123")
        elif k == "zone":
            r.matching(e, ZONE, "a zone like europe-west1-b")
        elif k in ("instance", "network", "route_name"):
            r.matching(e, NAME, "a resource name: lowercase letters, digits and dashes, 1..63")
        elif k == "network_interface":
            r.matching(e, r"nic\d+", "a network interface name like nic0")
        elif k in ("zones", "route_tags"):
            pattern = ZONE if k == "zones" else NAME
            bad = [v for v in e.values if not re.fullmatch(pattern, v)]
            if not e.values or bad:
                r.error(e, f"{k} {' '.join(bad) or '(none)'} not valid",
                        "one or more zones like europe-west1-b" if k == "zones" else "one or more network tags")
            r.fields[k] = tuple(e.values)
        elif k == "route_priority":
            r.convert(e, "0..65535", lambda v: int(v) if v.isdigit() and int(v) <= 65535 else None)
        elif k in ("endpoint", "metadata_endpoint"):
            r.url(e)
        elif k == "reconcile_interval":
            r.seconds(e, 1, 3600)
        elif k == "poll_interval":
            r.seconds(e, 0.05, 10)
        elif k == "operation_timeout":
            r.seconds(e, *OPERATION_TIMEOUT)
        elif k == "peer_refresh":
            r.seconds(e, 10, 86400)
        elif k == "peer_label":
            r.convert(e, "KEY=VALUE with lowercase label characters, e.g. cloudvip-group=web", _label)
        else:
            r.unknown(e)
    if not inst.vips:
        r.error(None, "no VIP: list it in virtual_ipaddress", "the alias IP or routed address in virtual_ipaddress")
    elif any(v.address.version != 4 for v in inst.vips):
        r.error(None, "alias IP ranges and routes move IPv4 addresses here", "IPv4 addresses in virtual_ipaddress")
    if "route_name" in r.fields and len(inst.vips) > 1:
        r.error(None, "route_name names one route: this instance has several VIPs",
                "no route_name (each VIP's route is named cloudvip-A-B-C-D), or one VIP")
    if r.mode == "route" and "network_interface" in r.fields:
        r.error(None, "network_interface is for mode alias_ip", "mode alias_ip, or no network_interface")
    if r.failed:
        return None
    return GcpSettings(**r.fields)  # type: ignore[arg-type]
