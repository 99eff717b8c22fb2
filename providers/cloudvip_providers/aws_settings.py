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
        peer_tag cloudvip:group=web  # fill unicast peers from instances with this tag
        peer_refresh 60
    }
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address

from cloudvip.config.diagnostics import Diagnostics
from cloudvip.config.model import CloudBlock, CloudEntry, VrrpInstance

MODES = ("secondary_ip", "elastic_ip", "route_table")
_IDS = {"instance_id": r"i-[0-9a-f]{8,17}", "eni": r"eni-[0-9a-f]{8,17}", "allocation_id": r"eipalloc-[0-9a-f]{8,17}",
        "route_tables": r"rtb-[0-9a-f]{8,17}"}
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


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
    peer_tag: tuple[str, str] | None = None
    peer_refresh: float = 60.0


def _one(entry: CloudEntry, diags: Diagnostics, what: str) -> str | None:
    if len(entry.values) != 1:
        diags.error(entry.loc, f"cloud aws: {entry.key} takes one value", what)
        return None
    return entry.values[0]


def _number(entry: CloudEntry, diags: Diagnostics, lo: float, hi: float) -> float | None:
    raw = _one(entry, diags, f"seconds, {lo:g}..{hi:g}")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        diags.error(entry.loc, f"cloud aws: {entry.key} {raw!r} is not valid", f"seconds, {lo:g}..{hi:g}")
        return None
    return value


def parse(block: CloudBlock, inst: VrrpInstance, diags: Diagnostics) -> AwsSettings | None:
    """Check the block (file:line errors into diags); the settings, or None if invalid."""
    before = len(diags.errors)
    fields: dict[str, object] = {}
    for e in block.entries:
        if e.children is not None:
            diags.error(e.loc, f"cloud aws: {e.key} takes no block", f"{e.key} VALUE")
            continue
        k = e.key
        if k == "mode":
            mode = _one(e, diags, " or ".join(MODES))
            if mode is not None and mode not in MODES:
                diags.error(e.loc, f"cloud aws: mode {mode!r} is not valid", " or ".join(MODES))
            fields["mode"] = mode
        elif k in ("instance_id", "eni", "allocation_id"):
            val = _one(e, diags, f"an id like {_IDS[k]}")
            if val is not None and not re.fullmatch(_IDS[k], val):
                diags.error(e.loc, f"cloud aws: {k} {val!r} is not valid", f"an id like {_IDS[k]}")
            fields[k] = val
        elif k == "route_tables":
            bad = [v for v in e.values if not re.fullmatch(_IDS[k], v)]
            if not e.values or bad:
                diags.error(e.loc, f"cloud aws: route_tables {' '.join(bad) or '(none)'} not valid",
                            "one or more ids like rtb-0123abcd")
            fields[k] = tuple(e.values)
        elif k == "region":
            val = _one(e, diags, "a region like eu-central-1")
            if val is not None and not _REGION.match(val):
                diags.error(e.loc, f"cloud aws: region {val!r} is not valid", "a region like eu-central-1")
            fields[k] = val
        elif k == "private_ip":
            val = _one(e, diags, "an IPv4 address")
            try:
                addr = ip_address(val) if val is not None else None
            except ValueError:
                addr = None
            if not isinstance(addr, IPv4Address):
                diags.error(e.loc, f"cloud aws: private_ip {val!r} is not an IPv4 address", "an IPv4 address")
            fields[k] = addr
        elif k in ("endpoint", "imds_endpoint"):
            val = _one(e, diags, "an http(s) URL")
            if val is not None and not _URL.match(val):
                diags.error(e.loc, f"cloud aws: {k} {val!r} is not a URL", "http(s)://host[:port]")
            fields[k] = val
        elif k == "imds_v1_fallback":
            fields[k] = True
        elif k == "reconcile_interval":
            fields[k] = _number(e, diags, 1, 3600)
        elif k == "peer_refresh":
            fields[k] = _number(e, diags, 5, 86400)
        elif k == "peer_tag":
            val = _one(e, diags, "KEY=VALUE")
            if val is None or "=" not in val or not val.split("=", 1)[0]:
                diags.error(e.loc, f"cloud aws: peer_tag {val!r} is not valid", "KEY=VALUE, e.g. cloudvip:group=web")
            else:
                key, value = val.split("=", 1)
                fields[k] = (key, value)
        else:
            diags.warning(e.loc, f"cloud aws: unknown setting '{k}', ignored")
    chosen = fields.get("mode")
    if chosen is None:
        if "mode" not in fields:
            diags.error(block.loc, "cloud aws needs a mode", " or ".join(MODES))
    elif chosen == "elastic_ip" and not fields.get("allocation_id"):
        diags.error(block.loc, "cloud aws: mode elastic_ip needs allocation_id", "allocation_id eipalloc-...")
    elif chosen == "route_table" and not fields.get("route_tables"):
        diags.error(block.loc, "cloud aws: mode route_table needs route_tables", "route_tables rtb-...")
    if chosen in ("secondary_ip", "route_table"):
        if not inst.vips or any(v.address.version != 4 for v in inst.vips):
            diags.error(block.loc, f"cloud aws: mode {chosen} moves the IPv4 addresses of virtual_ipaddress",
                        "at least one IPv4 virtual_ipaddress")
    if len(diags.errors) > before:
        return None
    return AwsSettings(**{k: v for k, v in fields.items() if v is not None})  # type: ignore[arg-type]
