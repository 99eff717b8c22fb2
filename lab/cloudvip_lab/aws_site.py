"""An emulated AWS site for agents in lab namespaces: in every node's namespace, the EC2
emulator answers on 127.0.0.1:EC2_PORT (forwarded to moto on the host's loopback) and a fake
IMDSv2 on 127.0.0.1:IMDS_PORT tells that node which instance and ENI it is, so the agents
discover themselves exactly as on EC2 and nothing leaves the machine."""

from __future__ import annotations

import functools
from typing import Any, Callable

from .cloud_edge import ApiEdge
from .ec2_emulator import OVERLAY_VIP, REGION, Ec2World
from .fabric import Route
from .netns_services import FakeImds, Forwarder
from .topology import Topology

EC2_PORT, IMDS_PORT = 5000, 1338
MODES = ("secondary_ip", "elastic_ip", "route_table")
#: the write each mode makes when a backup takes over (where faults and delays are injected)
TAKEOVER_WRITE = {"secondary_ip": "AssignPrivateIpAddresses", "elastic_ip": "AssociateAddress",
                  "route_table": "ReplaceRoute"}


class AwsSite:
    def __init__(self, topo: Topology, world: Ec2World, emulator_port: int, edge: ApiEdge | None = None,
                 backend: Callable[[], Any] | None = None) -> None:
        self.topo, self.world, self.backend = topo, world, backend
        self.edge = edge or ApiEdge(emulator_port)
        #: a secondary-IP VIP and the node the data plane sends it to now (a lab Fabric's
        #: applied route); None: IMDS shows the cloud's state at once (the instant profile)
        self.data_plane: tuple[str, Callable[[], int | None]] | None = None
        self.services: list[Forwarder | FakeImds] = []
        self.forwarders: list[Forwarder] = []  # per node: pause() makes the API unreachable from it
        try:
            for i, (node, instance, eni) in enumerate(zip(topo.nodes, world.instances, world.enis, strict=True)):
                self.forwarders.append(Forwarder(node.name, EC2_PORT, self.edge.port, self.edge.rtt))
                self.services.append(self.forwarders[-1])
                self.services.append(FakeImds(node.name, IMDS_PORT, {"instance_id": instance, "mac": node.mac,
                                                                      "region": REGION, "eni": eni},
                                              local_ipv4s=functools.partial(self.local_ipv4s, i)))
        except BaseException:
            self.close()
            raise

    def cloud_block(self, mode: str, extra: str = "") -> str:
        """The `cloud aws` block of a node's vrrp_instance; IDs other than ours come from the world."""
        specific = {"secondary_ip": "",
                    "elastic_ip": f"        allocation_id {self.world.allocation_id}\n",
                    "route_table": f"        route_tables {self.world.route_table}\n"}[mode]
        return (f"    cloud aws {{\n        mode {mode}\n{specific}        endpoint {self.edge.scheme}://127.0.0.1:{EC2_PORT}\n"
                f"        imds_endpoint http://127.0.0.1:{IMDS_PORT}\n{extra}    }}\n")

    def holder_eni(self, mode: str, vip: str) -> list[str]:
        """Where the cloud sends the VIP in `mode`: the ENIs, [] if nowhere."""
        if mode == "secondary_ip":
            return self.world.vip_enis(vip)
        eni = self.world.eip_eni() if mode == "elastic_ip" else self.world.route_eni(vip)
        return [eni] if eni else []

    def remove_in_cloud(self, mode: str, vip: str, eni: str) -> None:
        """Someone removes the VIP from `eni` in the cloud behind the agents' back."""
        client = self.world.client
        if mode == "secondary_ip":
            client.unassign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[vip])
        elif mode == "elastic_ip":
            addr = client.describe_addresses(AllocationIds=[self.world.allocation_id])["Addresses"][0]
            client.disassociate_address(AssociationId=addr["AssociationId"])
        else:
            client.delete_route(RouteTableId=self.world.route_table, DestinationCidrBlock=f"{vip}/32")

    def route(self, mode: str, vip: str, backend: Any) -> Route:
        """Where the data plane sends the VIP, from moto's state in this process (no API read)."""
        if mode == "secondary_ip":
            enis = [e.id for e in list(backend.enis.values())
                    if vip in [a.get("PrivateIpAddress") for a in e.private_ip_addresses]]
        elif mode == "elastic_ip":
            eni = backend.address_by_allocation([self.world.allocation_id])[0].eni
            enis = [eni.id] if eni is not None else []
        else:
            table = backend.route_tables[self.world.route_table]
            enis = [r.interface.id for r in table.routes
                    if r.destination_cidr_block == f"{vip}/32" and r.interface is not None]
        node = self.world.enis.index(enis[0]) if len(enis) == 1 and enis[0] in self.world.enis else None
        return Route(node, translate=mode == "elastic_ip")

    def local_ipv4s(self, i: int) -> list[str]:
        """IMDS's network/interfaces/macs/MAC/local-ipv4s of node i's ENI. AWS: "check
        local-ipv4s in the instance metadata to confirm that the remapping is complete": it
        shows a moved secondary IP once the data plane has it, not when the API answers."""
        if self.backend is None:
            return [str(self.topo.nodes[i].ip)]
        eni = self.backend().enis[self.world.enis[i]]
        addrs = [str(a["PrivateIpAddress"]) for a in eni.private_ip_addresses]
        if self.data_plane is not None:
            vip, applied = self.data_plane
            addrs = [a for a in addrs if a != vip] + ([vip] if applied() == i else [])
        return addrs

    @staticmethod
    def vip_for(mode: str, default: str) -> str:
        """route_table needs a VIP outside the VPC; the other modes use the subnet's."""
        return OVERLAY_VIP if mode == "route_table" else default

    def close(self) -> None:
        for s in self.services:
            s.close()
        self.services.clear()
        self.edge.close()
