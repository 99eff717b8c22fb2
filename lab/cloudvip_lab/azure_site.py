"""An emulated Azure for agents in lab namespaces: in every node's namespace Azure Resource
Manager answers on 127.0.0.1:API_PORT (over TLS with the lab's CA, forwarded to the emulator on
the host's loopback) and IMDS on 127.0.0.1:IMDS_PORT tells that node which VM it is and hands
out its managed identity's token, so the agents find their identity and credentials exactly as
on an Azure VM (azure-identity is pointed at it by AZURE_POD_IDENTITY_AUTHORITY_HOST)."""

from __future__ import annotations

from .arm_emulator import GROUP, LOCATION, SUBSCRIPTION, ArmWorld
from .cloud_edge import ApiEdge
from .fabric import Route
from .netns_services import Forwarder, NetnsHttp, azure_imds_handler, azure_instance_metadata
from .topology import Topology

API_PORT, IMDS_PORT = 5003, 1341
MODES = ("route_table", "ip_config")
ROUTED_VIP, SECONDARY_VIP = "203.0.113.10", "198.51.100.100"  # a route's outside the VNet; an IP config's inside


class AzureSite:
    def __init__(self, topo: Topology, world: ArmWorld, edge: ApiEdge) -> None:
        if edge.ca is None:
            raise ValueError("ARM is reached over HTTPS only (azure-core sends no bearer token in clear)")
        self.topo, self.world, self.edge = topo, world, edge
        world.emulator.public_base = f"https://127.0.0.1:{API_PORT}"  # the LRO URLs, as the nodes reach ARM
        self.services: list[Forwarder | NetnsHttp] = []
        self.forwarders: list[Forwarder] = []  # per node: pause() makes the API unreachable from it
        try:
            for node, nic in zip(topo.nodes, world.nics, strict=True):
                self.forwarders.append(Forwarder(node.name, API_PORT, self.edge.port, self.edge.rtt))
                self.services.append(self.forwarders[-1])
                meta = azure_instance_metadata(SUBSCRIPTION, GROUP, nic.vm, LOCATION, node.mac, str(node.ip),
                                               world.emulator.vms[nic.vm].tags)
                self.services.append(NetnsHttp(node.name, IMDS_PORT, azure_imds_handler(
                    lambda m=meta: m, world.emulator.issue_token)))  # type: ignore[misc]
        except BaseException:
            self.close()
            raise

    def env(self) -> dict[str, str]:
        """The agents' environment: the managed identity's token comes from the node's IMDS."""
        return self.edge.env() | {"AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://127.0.0.1:{IMDS_PORT}"}

    def cloud_block(self, mode: str, extra: str = "") -> str:
        """The `cloud azure` block of a node's vrrp_instance: the identity comes from IMDS."""
        table = f"        route_tables {self.world.table}\n" if mode == "route_table" else ""
        return (f"    cloud azure {{\n        mode {mode}\n{table}        endpoint https://127.0.0.1:{API_PORT}\n"
                f"        imds_endpoint http://127.0.0.1:{IMDS_PORT}\n        poll_interval 0.05\n{extra}    }}\n")

    def route(self, mode: str, vip: str) -> Route:
        """Where the data plane sends the VIP, from the emulator's state (no API read)."""
        held = self.world.holders(mode, vip)
        keys = [n.name for n in self.world.nics] if mode == "ip_config" else [str(n.ip) for n in self.topo.nodes]
        return Route(keys.index(held[0]) if len(held) == 1 and held[0] in keys else None)

    @staticmethod
    def vip_for(mode: str) -> str:
        return ROUTED_VIP if mode == "route_table" else SECONDARY_VIP

    def close(self) -> None:
        for s in self.services:
            s.close()
        self.services.clear()
        self.edge.close()
