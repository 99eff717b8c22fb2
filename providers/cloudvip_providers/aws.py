"""AWS: move the VIP through the EC2 API (boto3, imported only when this provider is used).

Modes: `secondary_ip` (AssignPrivateIpAddresses with AllowReassignment, then the address on the
host), `elastic_ip` (AssociateAddress with AllowReassociation), `route_table` (ReplaceRoute, or
CreateRoute when missing, of VIP/32 to our ENI). Every move reads who holds the VIP first, acts
only if it is not us, and verifies afterwards. Release never touches the cloud: a backup never
un-assigns the VIP from someone else; it only removes its own host address.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from cloudvip.config.diagnostics import Diagnostics
from cloudvip.config.model import IPAddress, VrrpInstance
from cloudvip.provider import Holder, HolderInfo, Provider, ProviderContext, ProviderError

from . import aws_settings
from .aws_imds import Imds, ImdsError
from .linux import LinuxProvider

RETRYABLE_CODES = {"RequestLimitExceeded", "Throttling", "ThrottlingException", "InternalError", "InternalFailure",
                   "ServiceUnavailable", "Unavailable", "RequestTimeout", "RequestExpired"}


def classify(exc: Exception) -> ProviderError:
    """Map a botocore exception to a ProviderError, retryable for throttling, 5xx and network."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        retryable = code in RETRYABLE_CODES or status >= 500 or status == 429
        return ProviderError(f"{code or status}: {err.get('Message', exc)}", retryable=retryable)
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"{type(exc).__name__}: {exc}", retryable=True)
    return ProviderError(f"{type(exc).__name__}: {exc}", retryable=False)


@dataclass(frozen=True, slots=True)
class Target:
    instance_id: str
    eni: str
    region: str


class AwsProvider(Provider):
    name = "aws"

    @classmethod
    def check_config(cls, instance: VrrpInstance, diags: Diagnostics) -> None:
        assert instance.cloud is not None
        aws_settings.parse(instance.cloud, instance, diags)

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        diags = Diagnostics()
        assert ctx.instance.cloud is not None
        settings = aws_settings.parse(ctx.instance.cloud, ctx.instance, diags)
        if settings is None:
            raise ProviderError("; ".join(str(d) for d in diags.errors), retryable=False)
        self.settings = settings
        self.reconcile_interval = settings.reconcile_interval
        self.peer_refresh = settings.peer_refresh if settings.peer_tag else None
        self.discovered: list[IPAddress] = []
        self.host_side = LinuxProvider(ctx)  # the OS must carry a secondary IP or overlay IP too
        self.target: Target | None = None
        self._ec2: Any = None
        self.peer_enis: dict[str, str] = {}  # ENI -> peer address, for telling a split brain from a stranger

    # ---------- start: discovery and client ----------
    async def start(self) -> None:
        s = self.settings
        if s.mode != "elastic_ip":
            await self.host_side.start()
        instance_id, eni, region = s.instance_id, s.eni, s.region
        if not (instance_id and eni and region):
            link = await self.ctx.host.link(self.ctx.instance.interface)
            imds = Imds(s.imds_endpoint, v1_fallback=s.imds_v1_fallback)
            try:
                ident = await asyncio.to_thread(imds.identity, link.mac)
            except ImdsError as exc:
                raise ProviderError(f"instance metadata: {exc} (set instance_id, eni and region in the cloud "
                                    "block to run without IMDS)", retryable=False) from None
            instance_id, eni, region = instance_id or ident.instance_id, eni or ident.eni, region or ident.region
        self.target = Target(instance_id, eni, region)
        self._ec2 = await asyncio.to_thread(self._client, region)  # pay import and credential costs now
        if s.mode == "route_table":
            await self._warn_source_dest_check()
        try:  # who our peers are, before any failover needs to know (and the connection is open)
            await self._map_peers()
        except ProviderError as exc:
            self.ctx.log.warning("%s: cannot look up the peers' ENIs yet: %s", self.ctx.instance.name, exc)
        self.ctx.log.info("%s: aws %s on instance %s, ENI %s, region %s", self.ctx.instance.name, s.mode,
                          instance_id, eni, region)

    def _client(self, region: str) -> Any:
        import boto3
        from botocore.config import Config

        # one attempt per call: retries are ours (tenacity, in the mover), so VRRP decides between them
        cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5)
        client = boto3.client("ec2", region_name=region, endpoint_url=self.settings.endpoint, config=cfg)
        client.meta.events  # noqa: B018 - force the service model to load here, not on the first move
        return client

    async def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        started = time.monotonic()
        try:
            result: dict[str, Any] = await asyncio.to_thread(getattr(self._ec2, op), **kwargs)
        except Exception as exc:
            raise classify(exc) from None
        finally:
            self.ctx.log.debug("%s: ec2 %s %.1f ms", self.ctx.instance.name, op, (time.monotonic() - started) * 1000)
        return result

    async def _warn_source_dest_check(self) -> None:
        assert self.target is not None
        try:
            enis = await self._call("describe_network_interfaces", NetworkInterfaceIds=[self.target.eni])
        except ProviderError as exc:
            self.ctx.log.warning("%s: cannot read source/destination check: %s", self.ctx.instance.name, exc)
            return
        for ni in enis.get("NetworkInterfaces", []):
            if ni.get("SourceDestCheck", False):
                self.ctx.log.warning("%s: source/destination check is on for %s: traffic routed to the VIP will "
                                     "be dropped; turn it off", self.ctx.instance.name, self.target.eni)

    @property
    def vips(self) -> list[str]:
        return [str(v.address) for v in self.ctx.instance.vips if v.address.version == 4]

    # ---------- who holds it ----------
    async def holder(self) -> HolderInfo:
        return await self._classify(await self._holders())

    async def _classify(self, holders: list[str]) -> HolderInfo:
        assert self.target is not None
        if self._ours(holders):
            return HolderInfo(Holder.SELF, self.target.eni)
        others = sorted({e for h in holders if h and h != self.target.eni for e in h.split(",")})
        if others:
            if not self.peer_enis or any(e not in self.peer_enis for e in others):
                await self._map_peers()  # a peer may have been replaced since we looked
            known = all(e in self.peer_enis for e in others)
            detail = ", ".join(f"{e} ({self.peer_enis[e]})" if e in self.peer_enis else e for e in others)
            return HolderInfo(Holder.PEER if known else Holder.OTHER, detail)
        return HolderInfo(Holder.NOBODY)

    def _ours(self, holders: list[str]) -> bool:
        assert self.target is not None
        return bool(holders) and all(h == self.target.eni for h in holders)

    async def discover_peers(self) -> list[IPAddress]:
        """Private addresses of the running instances carrying peer_tag, ourselves excluded."""
        from ipaddress import ip_address

        assert self.target is not None
        if self.settings.peer_tag is None:
            return []
        key, value = self.settings.peer_tag
        found = await self._call("describe_instances", Filters=[
            {"Name": f"tag:{key}", "Values": [value]}, {"Name": "instance-state-name", "Values": ["running"]}])
        peers = sorted({ip_address(i["PrivateIpAddress"]) for r in found.get("Reservations", [])
                        for i in r.get("Instances", [])
                        if i.get("InstanceId") != self.target.instance_id and i.get("PrivateIpAddress")})
        self.discovered = list(peers)
        return self.discovered

    async def _map_peers(self) -> None:
        """ENIs of our VRRP peers, found by their addresses."""
        peers = [str(p.address) for p in self.ctx.instance.unicast_peers if p.address.version == 4]
        peers += [str(p) for p in self.discovered if str(p) not in peers]
        if not peers:
            return
        found = await self._call("describe_network_interfaces", Filters=[
            {"Name": "addresses.private-ip-address", "Values": peers}])
        self.peer_enis = {ni["NetworkInterfaceId"]: ni.get("PrivateIpAddress", "")
                          for ni in found.get("NetworkInterfaces", [])}

    async def _holders(self) -> list[str]:
        """The ENI each VIP (or the Elastic IP) points to; '' where it points nowhere."""
        s = self.settings
        if s.mode == "secondary_ip":
            out = []
            for vip in self.vips:
                found = await self._call("describe_network_interfaces", Filters=[
                    {"Name": "addresses.private-ip-address", "Values": [vip]}])
                enis = [ni["NetworkInterfaceId"] for ni in found.get("NetworkInterfaces", [])]
                out.append(enis[0] if len(enis) == 1 else ("" if not enis else ",".join(sorted(enis))))
            return out
        if s.mode == "elastic_ip":
            found = await self._call("describe_addresses", AllocationIds=[s.allocation_id])
            addrs = found.get("Addresses", [])
            return [str(addrs[0].get("NetworkInterfaceId", "")) if addrs else ""]
        tables = await self._call("describe_route_tables", RouteTableIds=list(s.route_tables))
        out = []
        for table in tables.get("RouteTables", []):
            for vip in self.vips:
                route = next((r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == f"{vip}/32"), None)
                out.append(str(route.get("NetworkInterfaceId", "")) if route else "")
        return out

    # ---------- moves ----------
    async def take(self) -> None:
        assert self.target is not None
        # the failover's critical path is three calls: check, write, verify. Who else holds
        # the VIP matters only when the verification does not find it ours.
        current = await self._holders()
        if not self._ours(current):
            if not self.ctx.wanted():
                self.ctx.log.info("%s: no longer master: no claim", self.ctx.instance.name)
                return
            await self._point_to(self.target.eni)
            after = await self._holders()
            verified = HolderInfo(Holder.SELF) if self._ours(after) else await self._classify(after)
            if verified.holder is Holder.PEER:
                # a peer claimed right after us: both are master (a partition). The last claim
                # stands; fighting back would be ping-pong. Reconciliation reports it and the
                # election settles it when adverts flow again.
                self.ctx.log.warning("%s: split brain? peer %s claimed the VIP right after us; not fighting",
                                     self.ctx.instance.name, verified.detail)
            elif verified.holder is not Holder.SELF:
                raise ProviderError(f"after the move the VIP is still held by {verified.detail or 'nobody'}")
            else:
                was = ", ".join(f"{e} ({self.peer_enis[e]})" if e in self.peer_enis else e
                                for e in sorted({e for h in current for e in h.split(",") if e}))
                self.ctx.log.info("%s: aws %s now points to %s (was %s)", self.ctx.instance.name,
                                  self.settings.mode, self.target.eni, was or "nobody")
        if self.settings.mode != "elastic_ip":
            await self.host_side.take()

    async def _point_to(self, eni: str) -> None:
        """Make the cloud send the VIP to `eni` (ours, or the master's when we hand it over)."""
        assert self.target is not None
        s = self.settings
        if s.mode == "secondary_ip":
            await self._call("assign_private_ip_addresses", NetworkInterfaceId=eni, PrivateIpAddresses=self.vips,
                             AllowReassignment=True)
        elif s.mode == "elastic_ip":
            kwargs: dict[str, Any] = {"AllocationId": s.allocation_id, "NetworkInterfaceId": eni,
                                      "AllowReassociation": True}
            if s.private_ip is not None and eni == self.target.eni:
                kwargs["PrivateIpAddress"] = str(s.private_ip)
            await self._call("associate_address", **kwargs)
        else:
            tables = await self._call("describe_route_tables", RouteTableIds=list(s.route_tables))
            for table in tables.get("RouteTables", []):
                present = {r.get("DestinationCidrBlock"): r.get("NetworkInterfaceId") for r in table.get("Routes", [])}
                for vip in self.vips:
                    dest = f"{vip}/32"
                    if present.get(dest) == eni:
                        continue  # this table already points to us: no write
                    op = "replace_route" if dest in present else "create_route"
                    await self._call(op, RouteTableId=table["RouteTableId"], DestinationCidrBlock=dest,
                                     NetworkInterfaceId=eni)

    async def announce(self) -> None:
        """A master that hears a lower priority may have lost the VIP to that node during a
        partition (keepalived's notify_master_rx_lower_pri case): take it back if so."""
        if (await self.holder()).holder is not Holder.SELF:
            self.ctx.log.warning("%s: a lower-priority master held the VIP: re-asserting", self.ctx.instance.name)
            await self.take()

    async def release(self) -> None:
        if self.settings.mode != "elastic_ip":
            await self.host_side.release()

    async def yield_to(self, master: IPAddress) -> None:
        """We stepped down for `master` after a split brain: if the cloud still sends the VIP to
        us, hand it to the master (it may never hear an advert from us to re-assert itself).
        Wait two advert intervals first: a master that did hear us re-asserts by itself, and
        then there is nothing to write."""
        await asyncio.sleep(2 * self.ctx.instance.advert_int)
        info = await self.holder()
        if info.holder is not Holder.SELF:
            return
        if str(master) not in self.peer_enis.values():
            await self._map_peers()
        eni = next((e for e, ip in self.peer_enis.items() if ip == str(master)), None)
        if eni is None:
            self.ctx.log.warning("%s: the cloud still points to us but master %s has no known ENI; its "
                                 "reconciliation will take the VIP", self.ctx.instance.name, master)
            return
        await self._point_to(eni)
        self.ctx.log.info("%s: handed the VIP to master %s (%s)", self.ctx.instance.name, master, eni)

    async def close(self) -> None:
        await self.host_side.close()
