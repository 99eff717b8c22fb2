"""An emulated Hetzner Cloud for agents in lab namespaces: in every node's namespace the API
answers on 127.0.0.1:API_PORT (forwarded to the emulator on the host's loopback) and the
metadata service on 127.0.0.1:METADATA_PORT tells that node which server it is."""

from __future__ import annotations

from .cloud_edge import ApiEdge
from .hcloud_emulator import ALIAS_VIP, FLOATING_VIP, HetznerWorld
from .fabric import Route
from .netns_services import Forwarder, NetnsHttp, hetzner_metadata_handler
from .topology import Topology

API_PORT, METADATA_PORT = 5001, 1339
MODES = ("floating_ip", "alias_ip")


class HetznerSite:
    def __init__(self, topo: Topology, world: HetznerWorld, token_file: str, edge: ApiEdge | None = None) -> None:
        self.topo, self.world, self.token_file = topo, world, token_file
        self.edge = edge or ApiEdge(world.emulator.port)
        self.services: list[Forwarder | NetnsHttp] = []
        self.forwarders: list[Forwarder] = []  # per node: pause() makes the API unreachable from it
        try:
            for node, server in zip(topo.nodes, world.servers, strict=True):
                self.forwarders.append(Forwarder(node.name, API_PORT, self.edge.port, self.edge.rtt))
                self.services.append(self.forwarders[-1])
                yaml = (f"- ip: {node.ip}\n  alias_ips: []\n  interface_num: 1\n  mac_address: {server.mac}\n"
                        f"  network_id: {world.network}\n  network_name: lab\n  network: 198.51.100.0/24\n"
                        f"  subnet: 198.51.100.0/24\n  gateway: 198.51.100.1\n")
                self.services.append(NetnsHttp(node.name, METADATA_PORT, hetzner_metadata_handler({
                    "/hetzner/v1/metadata/instance-id": str(server.id),
                    "/hetzner/v1/metadata/hostname": server.name,
                    "/hetzner/v1/metadata/private-networks": yaml})))
        except BaseException:
            self.close()
            raise

    def cloud_block(self, mode: str, extra: str = "") -> str:
        """The `cloud hetzner` block of a node's vrrp_instance: everything else is discovered."""
        return (f"    cloud hetzner {{\n        mode {mode}\n        token_file {self.token_file}\n"
                f"        endpoint {self.edge.scheme}://127.0.0.1:{API_PORT}/v1\n"
                f"        metadata_endpoint http://127.0.0.1:{METADATA_PORT}/hetzner/v1/metadata\n"
                f"        poll_interval 0.05\n{extra}    }}\n")

    def route(self, mode: str) -> Route:
        """Where the data plane sends the VIP, from the emulator's state (no API read)."""
        ids = [s.id for s in self.world.servers]
        held = self.world.holder_ids(mode)
        return Route(ids.index(held[0]) if len(held) == 1 and held[0] in ids else None)

    @staticmethod
    def vip_for(mode: str) -> str:
        return FLOATING_VIP if mode == "floating_ip" else ALIAS_VIP

    def close(self) -> None:
        for s in self.services:
            s.close()
        self.services.clear()
        self.edge.close()
