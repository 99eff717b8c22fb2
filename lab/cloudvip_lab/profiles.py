"""How a cloud behaves in the lab, as named profiles: `instant` (the emulators as they are:
plain HTTP on loopback, every change in effect at once) and `realistic` (distance, TLS, a data
plane that follows the API some time after it answered, reads that lag writes).

Each figure of `realistic` is either taken from published material or a labelled assumption:
SOURCES says which, and docs/lab.md lists them. Change them with --rtt/--propagation in the lab
and the benches, not here, when you know better figures for your region.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Profile:
    name: str
    rtt: float = 0.0  # seconds between an agent and the API endpoint (a round trip)
    tls: bool = False  # HTTPS with the lab CA
    idle_close: float = 0.0  # the endpoint closes a keep-alive connection idle this long (0: never)
    #: seconds from the cloud's state changing to the data plane following it, per mode
    propagation: dict[str, float] = field(default_factory=dict)
    consistency: float = 0.0  # AWS: seconds a Describe may still answer as before a write
    action_seconds: float = 0.3  # Hetzner: how long an action runs before `success`
    operation_seconds: float = 0.0  # GCP: how long a zonal/global operation runs before DONE
    #: Azure: how long a long-running ARM operation runs before `Succeeded`, per mode
    arm_seconds: dict[str, float] = field(default_factory=dict)

    def propagation_for(self, mode: str) -> float:
        return self.propagation.get(mode, 0.0)

    def with_changes(self, rtt: float | None = None, propagation: float | None = None) -> Profile:
        """The profile with the round trip and/or every mode's propagation replaced."""
        out = self
        if rtt is not None:
            out = replace(out, rtt=rtt)
        if propagation is not None:
            out = replace(out, propagation={m: propagation for m in PROPAGATED_MODES})
        return out


PROPAGATED_MODES = ("secondary_ip", "elastic_ip", "route_table", "floating_ip", "alias_ip", "gcp_alias_ip",
                    "gcp_route", "azure_route_table", "azure_ip_config")

INSTANT = Profile("instant")
REALISTIC = Profile(
    "realistic", rtt=0.030, tls=True, idle_close=60.0,
    propagation={"secondary_ip": 2.0, "elastic_ip": 5.0, "route_table": 2.0, "floating_ip": 1.0, "alias_ip": 1.0,
                 "gcp_alias_ip": 2.0, "gcp_route": 2.0, "azure_route_table": 2.0, "azure_ip_config": 5.0},
    consistency=1.0, action_seconds=2.0, operation_seconds=3.0,
    arm_seconds={"azure_route_table": 8.0, "azure_ip_config": 15.0})
PROFILES = {p.name: p for p in (INSTANT, REALISTIC)}

#: where each figure of REALISTIC comes from (shown by docs/lab.md and `cloudvip lab --profile`)
SOURCES = {
    "rtt": "assumption: a regional API endpoint 20-40 ms away (issue #17); 30 ms",
    "tls": "fact: EC2 and Hetzner Cloud endpoints are HTTPS only",
    "idle_close": "assumption: the endpoint closes idle keep-alive connections after 60 s (not published)",
    "secondary_ip": "assumption: 2 s. AWS documents remapping a secondary IP as asynchronous "
                    "(AssignPrivateIpAddresses API reference) without a figure",
    "elastic_ip": "published: 5 s, the low end of the 5-6 s re-association quoted from NGINX's guide "
                  "'Active-Passive HA for NGINX Plus on AWS Using Elastic IP Addresses' (issue #17)",
    "route_table": "assumption: 2 s (AWS publishes no figure for a route change to take effect)",
    "floating_ip": "assumption: 2 s running action, then 1 s (Hetzner Cloud publishes no figure; "
                   "its dedicated-server failover IPs take 40-60 s, a different product)",
    "alias_ip": "assumption: 2 s running action, then 1 s (no published figure)",
    "gcp_alias_ip": "assumption: each of the two operations (remove, add) runs 3 s, then 2 s (Google publishes "
                    "no figure; two API calls per move: J. Kuehlers, 'Recommendations for IP address failover "
                    "for high availability on Google Compute Engine', 2018)",
    "gcp_route": "assumption: the delete and the insert run 3 s each, then 2 s (no published figure)",
    "azure_route_table": "published: about 10 s for a user-defined route to move (F5's Azure failover "
                         "experience, issue #20): the route's operation runs 8 s, the data plane follows 2 s later",
    "azure_ip_config": "published: 30-90 s, sometimes minutes, for a NIC's secondary IP configuration (F5, issue "
                       "#20): two NIC updates (remove, add) of 15 s each, then 5 s: 35 s, the low end of it",
    "consistency": "assumption: 1 s. EC2 documents its API as eventually consistent "
                   "('Eventual consistency in the Amazon EC2 API') without a figure",
}
