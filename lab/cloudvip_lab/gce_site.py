"""An emulated Google Cloud for agents in lab namespaces: in every node's namespace the Compute
Engine API answers on 127.0.0.1:API_PORT (forwarded to the emulator on the host's loopback) and
the metadata server on 127.0.0.1:METADATA_PORT tells that node which VM it is and hands out its
service account's token, so the agents find their identity and credentials exactly as on GCE."""

from __future__ import annotations

from .cloud_edge import ApiEdge
from .fabric import Route
from .gce_emulator import PROJECT, PROJECT_NUMBER, GceWorld
from .netns_services import Forwarder, NetnsHttp, gce_metadata_handler, gce_metadata_paths
from .topology import Topology

API_PORT, METADATA_PORT = 5002, 1340
MODES = ("alias_ip", "route")
ALIAS_VIP, ROUTED_VIP = "198.51.100.100", "203.0.113.10"  # an alias in the subnet; a route's outside the VPC


class GceSite:
    def __init__(self, topo: Topology, world: GceWorld, edge: ApiEdge | None = None) -> None:
        self.topo, self.world = topo, world
        self.edge = edge or ApiEdge(world.emulator.port)
        self.services: list[Forwarder | NetnsHttp] = []
        self.forwarders: list[Forwarder] = []  # per node: pause() makes the API unreachable from it
        try:
            for node, inst in zip(topo.nodes, world.instances, strict=True):
                self.forwarders.append(Forwarder(node.name, API_PORT, self.edge.port, self.edge.rtt))
                self.services.append(self.forwarders[-1])
                nics = [{"mac": node.mac, "ip": str(node.ip), "network": f"projects/{PROJECT_NUMBER}/networks/default"}]
                paths = gce_metadata_paths(PROJECT, PROJECT_NUMBER, inst.zone, inst.name, nics)
                self.services.append(NetnsHttp(node.name, METADATA_PORT, gce_metadata_handler(
                    lambda p=paths: p, world.emulator.issue_token)))  # type: ignore[misc]
        except BaseException:
            self.close()
            raise

    def env(self) -> dict[str, str]:
        """The agents' environment: google-auth finds the VM (and its token) at the metadata server."""
        host = f"127.0.0.1:{METADATA_PORT}"
        return self.edge.env() | {"GCE_METADATA_HOST": host, "GCE_METADATA_IP": host,
                                  "GOOGLE_APPLICATION_CREDENTIALS": ""}

    def cloud_block(self, mode: str, extra: str = "") -> str:
        """The `cloud gcp` block of a node's vrrp_instance: the identity comes from the metadata server."""
        return (f"    cloud gcp {{\n        mode {mode}\n        endpoint {self.edge.scheme}://127.0.0.1:{API_PORT}\n"
                f"        metadata_endpoint http://127.0.0.1:{METADATA_PORT}/computeMetadata/v1\n"
                f"        poll_interval 0.05\n{extra}    }}\n")

    def route(self, mode: str, vip: str) -> Route:
        """Where the data plane sends the VIP, from the emulator's state (no API read)."""
        names = [i.name for i in self.world.instances]
        held = self.world.holders(mode, vip)
        return Route(names.index(held[0]) if len(held) == 1 and held[0] in names else None)

    @staticmethod
    def vip_for(mode: str) -> str:
        return ALIAS_VIP if mode == "alias_ip" else ROUTED_VIP

    def close(self) -> None:
        for s in self.services:
            s.close()
        self.services.clear()
        self.edge.close()
