#!/usr/bin/env python3
"""The notify_master script a GCP user writes next to keepalived (what gcp-vpc-move-vip does):
cold-start Python, find who holds the alias IP range, remove it there, add it here, each an
updateNetworkInterface with the NIC's fingerprint, waiting for its operation. Used by
bench/cloud_failover.py --cloud gcp as the baseline of keepalived + script.

    gcp_move_vip.py PROJECT ZONE INSTANCE VIP ENDPOINT
Credentials: google-auth's default chain (the VM's metadata server).
"""

from __future__ import annotations

import sys
import time

import google.auth
from google.api_core.client_options import ClientOptions
from google.auth.transport.requests import AuthorizedSession
from google.cloud import compute_v1


def main() -> int:
    project, zone, me, vip, endpoint = sys.argv[1:6]
    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/compute"])
    opts = ClientOptions(api_endpoint=endpoint)
    instances = compute_v1.InstancesClient(credentials=creds, client_options=opts, transport="rest")
    ops = compute_v1.ZoneOperationsClient(credentials=creds, client_options=opts, transport="rest")
    session = AuthorizedSession(creds)  # the client drops an empty alias list (google-cloud-python#11931)
    cidr = f"{vip}/32"

    def set_aliases(name: str, change: list[str] | None) -> None:
        nic = instances.get(project=project, zone=zone, instance=name).network_interfaces[0]
        current = [r.ip_cidr_range for r in nic.alias_ip_ranges]
        wanted = [c for c in current if c != cidr] if change is None else sorted(set(current) | set(change))
        body = {"fingerprint": nic.fingerprint, "aliasIpRanges": [{"ipCidrRange": c} for c in wanted]}
        resp = session.patch(f"{endpoint}/compute/v1/projects/{project}/zones/{zone}/instances/{name}"
                             "/updateNetworkInterface", params={"networkInterface": nic.name}, timeout=10, json=body)
        resp.raise_for_status()
        op = compute_v1.Operation.from_json(resp.text, ignore_unknown_fields=True)
        while op.status != compute_v1.Operation.Status.DONE:
            time.sleep(0.5)
            op = ops.get(project=project, zone=zone, operation=op.name)

    for inst in instances.list(project=project, zone=zone):
        if inst.name != me and any(r.ip_cidr_range == cidr for n in inst.network_interfaces for r in n.alias_ip_ranges):
            set_aliases(inst.name, None)
    set_aliases(me, [cidr])
    return 0


if __name__ == "__main__":
    sys.exit(main())
