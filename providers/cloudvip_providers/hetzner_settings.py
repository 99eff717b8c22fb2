"""The `cloud hetzner { ... }` block: parsed and checked without importing hcloud.

    cloud hetzner {
        mode floating_ip                 # floating_ip | alias_ip
        floating_ip 4711                 # floating_ip: its id, or its address (default: the one holding the VIP)
        network 1234                     # alias_ip: the private network (default: from metadata, the one with the VIP)
        server_id 42                     # default: from the metadata service
        token_file /etc/cloudvip/hcloud-token   # default: $HCLOUD_TOKEN; the file must be 0600/0400
        endpoint https://api.hetzner.cloud/v1   # default: $HCLOUD_ENDPOINT or the public API
        metadata_endpoint http://169.254.169.254/hetzner/v1/metadata
        reconcile_interval 30            # seconds between ownership checks as master (>= 5)
        poll_interval 0.5                # seconds between action status polls
        operation_timeout 30             # seconds a whole operation (start, check, move) may take
        peer_label cloudvip-group=web    # fill unicast peers from servers with this label
        peer_refresh 300
    }

The API allows 3600 requests an hour per project: a check is one request, so the defaults
cost a master 120 an hour for reconciliation and 12 for peer refresh; a failover about five.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address

from cloudvip.config.diagnostics import Diagnostics
from cloudvip.config.model import CloudBlock, VrrpInstance

from .cloud_settings import OPERATION_TIMEOUT, BlockReader

MODES = ("floating_ip", "alias_ip")
METADATA = "http://169.254.169.254/hetzner/v1/metadata"
API = "https://api.hetzner.cloud/v1"


@dataclass(frozen=True, slots=True)
class HetznerSettings:
    mode: str
    floating_ip: str | None = None  # an id (digits) or an address
    network: int | None = None
    server_id: int | None = None
    token_file: str | None = None
    endpoint: str | None = None
    metadata_endpoint: str = METADATA
    reconcile_interval: float = 30.0
    poll_interval: float = 0.5
    operation_timeout: float = 30.0
    peer_label: tuple[str, str] | None = None
    peer_refresh: float = 300.0


def _id_or_address(value: str) -> str | None:
    return value if value.isdigit() or ip_address(value) else None


def _positive_int(value: str) -> int | None:
    return int(value) if value.isdigit() and int(value) > 0 else None


def parse(block: CloudBlock, inst: VrrpInstance, diags: Diagnostics) -> HetznerSettings | None:
    """Check the block (file:line errors into diags); the settings, or None if invalid."""
    r = BlockReader(block, diags, MODES)
    for e in r.entries():
        k = e.key
        if k == "floating_ip":
            r.convert(e, "a floating IP id or address", _id_or_address)
        elif k in ("network", "server_id"):
            r.convert(e, "a numeric id", _positive_int)
        elif k == "token_file":
            r.convert(e, "an absolute path", lambda v: v if v.startswith("/") else None)
        elif k in ("endpoint", "metadata_endpoint"):
            r.url(e)
        elif k == "reconcile_interval":
            r.seconds(e, 5, 3600)  # below 5 s the checks alone would eat the hourly request budget
        elif k == "poll_interval":
            r.seconds(e, 0.05, 10)
        elif k == "operation_timeout":
            r.seconds(e, *OPERATION_TIMEOUT)
        elif k == "peer_refresh":
            r.seconds(e, 30, 86400)
        elif k == "peer_label":
            r.key_value(e, "cloudvip-group=web")
        else:
            r.unknown(e)
    if not inst.vips:
        r.error(None, "the host must carry the address: list it in virtual_ipaddress",
                "the floating IP or alias IP in virtual_ipaddress")
    if r.failed:
        return None
    return HetznerSettings(**r.fields)  # type: ignore[arg-type]
