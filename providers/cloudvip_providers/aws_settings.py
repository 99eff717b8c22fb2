"""The `cloud aws { ... }` block: parsed and checked without importing boto3.

    cloud aws {
        mode secondary_ip            # secondary_ip | elastic_ip | route_table
        region eu-central-1          # default: from IMDS
        instance_id i-0abc...        # default: from IMDS
        eni eni-0abc...              # default: the ENI of the instance's interface (by MAC, from IMDS)
        allocation_id eipalloc-...   # elastic_ip: the Elastic IP to move
        private_ip 10.0.1.10         # elastic_ip: our private IP to bind it to (default: the ENI's primary)
        route_tables rtb-1 rtb-2     # route_table: where the VIP /32 route lives
        endpoint http://127.0.0.1:5000   # default: AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL / AWS
        imds_endpoint http://127.0.0.1:1338   # default: AWS_EC2_METADATA_SERVICE_ENDPOINT / 169.254.169.254
        imds_v1_fallback             # allow IMDSv1 when the token call fails (off by default)
        reconcile_interval 10        # seconds between ownership checks as master
        operation_timeout 30         # seconds a whole operation (start, check, move) may take
        peer_tag cloudvip:group=web  # fill unicast peers from instances with this tag
        peer_refresh 60
    }
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address

from cloudvip.config.diagnostics import Diagnostics
from cloudvip.config.model import CloudBlock, VrrpInstance

from .cloud_settings import OPERATION_TIMEOUT, BlockReader

MODES = ("secondary_ip", "elastic_ip", "route_table")
_IDS = {"instance_id": r"i-[0-9a-f]{8,17}", "eni": r"eni-[0-9a-f]{8,17}", "allocation_id": r"eipalloc-[0-9a-f]{8,17}",
        "route_tables": r"rtb-[0-9a-f]{8,17}"}
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


@dataclass(frozen=True, slots=True)
class AwsSettings:
    mode: str
    region: str | None = None
    instance_id: str | None = None
    eni: str | None = None
    allocation_id: str | None = None
    private_ip: IPv4Address | None = None
    route_tables: tuple[str, ...] = ()
    endpoint: str | None = None
    imds_endpoint: str | None = None
    imds_v1_fallback: bool = False
    reconcile_interval: float = 10.0
    operation_timeout: float = 30.0
    peer_tag: tuple[str, str] | None = None
    peer_refresh: float = 60.0


def parse(block: CloudBlock, inst: VrrpInstance, diags: Diagnostics) -> AwsSettings | None:
    """Check the block (file:line errors into diags); the settings, or None if invalid."""
    r = BlockReader(block, diags, MODES)
    for e in r.entries():
        k = e.key
        if k in ("instance_id", "eni", "allocation_id"):
            r.matching(e, _IDS[k], f"an id like {_IDS[k]}")
        elif k == "route_tables":
            bad = [v for v in e.values if not re.fullmatch(_IDS[k], v)]
            if not e.values or bad:
                r.error(e, f"route_tables {' '.join(bad) or '(none)'} not valid", "one or more ids like rtb-0123abcd")
            r.fields[k] = tuple(e.values)
        elif k == "region":
            r.convert(e, "a region like eu-central-1", lambda v: v if _REGION.match(v) else None)
        elif k == "private_ip":
            r.convert(e, "an IPv4 address", lambda v: ip_address(v) if ip_address(v).version == 4 else None)
        elif k in ("endpoint", "imds_endpoint"):
            r.url(e)
        elif k == "imds_v1_fallback":
            r.flag(e)
        elif k == "reconcile_interval":
            r.seconds(e, 1, 3600)
        elif k == "operation_timeout":
            r.seconds(e, *OPERATION_TIMEOUT)
        elif k == "peer_refresh":
            r.seconds(e, 5, 86400)
        elif k == "peer_tag":
            r.key_value(e, "cloudvip:group=web")
        else:
            r.unknown(e)
    chosen = r.mode
    if chosen == "elastic_ip":
        r.require("allocation_id", "mode elastic_ip needs allocation_id", "allocation_id eipalloc-...")
    elif chosen == "route_table":
        r.require("route_tables", "mode route_table needs route_tables", "route_tables rtb-...")
    if chosen in ("secondary_ip", "route_table"):
        if not inst.vips or any(v.address.version != 4 for v in inst.vips):
            r.error(None, f"mode {chosen} moves the IPv4 addresses of virtual_ipaddress",
                    "at least one IPv4 virtual_ipaddress")
    if r.failed:
        return None
    return AwsSettings(**r.fields)  # type: ignore[arg-type]
