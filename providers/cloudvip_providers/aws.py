"""AWS: move the VIP through the EC2 API (boto3, imported only when this provider is used).

Modes: `secondary_ip` (AssignPrivateIpAddresses with AllowReassignment, then the address on the
host), `elastic_ip` (AssociateAddress with AllowReassociation), `route_table` (ReplaceRoute, or
CreateRoute when missing, of VIP/32 to our ENI). The targets are ENIs; check, write, verify and
the split-brain rules are CloudProvider's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cloudvip.blocking import run_blocking
from cloudvip.config.model import IPAddress
from cloudvip.doctor.findings import Finding
from cloudvip.provider import ProviderContext, ProviderError

from . import aws_settings
from .aws_imds import Imds, ImdsError
from .cloud import CloudProvider, reads_answers

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
        return ProviderError(f"{code or status}: {err.get('Message', exc)}", retryable=retryable, code=code)
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"{type(exc).__name__}: {exc}", retryable=True)
    return ProviderError(f"{type(exc).__name__}: {exc}", retryable=False)


@dataclass(frozen=True, slots=True)
class Target:
    instance_id: str
    eni: str
    region: str


class AwsProvider(CloudProvider):
    name = "aws"
    #: EC2's Describe* are eventually consistent ("Eventual consistency in the Amazon EC2 API"):
    #: right after our write a read may still show the holder before it
    read_lag = 5.0

    parse_settings = staticmethod(aws_settings.parse)

    def __init__(self, ctx: ProviderContext) -> None:
        settings: aws_settings.AwsSettings = self.checked_settings(ctx)
        # the OS must carry a secondary IP or an overlay IP too; an Elastic IP lives in AWS only
        super().__init__(ctx, on_host=settings.mode != "elastic_ip")
        self.settings = settings
        self.label = f"aws {settings.mode}"
        self.reconcile_interval = settings.reconcile_interval
        self.operation_timeout = settings.operation_timeout
        self.peer_refresh = settings.peer_refresh if settings.peer_tag else None
        self.target: Target | None = None
        self._ec2: Any = None
        self._imds: Imds | None = None  # set when IMDS told us who we are: it confirms our writes too
        self._mac = ""
        if not (settings.instance_id and settings.eni and settings.region):
            self.metadata_url = Imds(settings.imds_endpoint).endpoint

    # ---------- start: discovery and client ----------
    async def start(self) -> None:
        s = self.settings
        await self.start_host()
        instance_id, eni, region = s.instance_id, s.eni, s.region
        if not (instance_id and eni and region):
            link = await self.ctx.host.link(self.ctx.instance.interface)
            imds = Imds(s.imds_endpoint, v1_fallback=s.imds_v1_fallback)
            try:
                ident = await run_blocking(imds.identity, link.mac)
            except ImdsError as exc:
                raise ProviderError(f"instance metadata: {exc} (set instance_id, eni and region in the cloud "
                                    "block to run without IMDS)", retryable=False) from None
            instance_id, eni, region = instance_id or ident.instance_id, eni or ident.eni, region or ident.region
            if s.mode == "secondary_ip" and eni == ident.eni:
                self._imds, self._mac = imds, ident.mac
                self.confirms_locally = True
        self.target = Target(instance_id, eni, region)
        self.me = eni
        self._ec2 = await run_blocking(self._client, region)  # pay import and credential costs now
        if s.mode == "route_table":
            await self._warn_source_dest_check()
        await self.map_peers_early()
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
            result: dict[str, Any] = await run_blocking(getattr(self._ec2, op), **kwargs)
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

    async def _confirmed_locally(self) -> list[str] | None:
        """AWS: "Remapping an IP address is an asynchronous operation [...] check
        network/interfaces/macs/mac/local-ipv4s in the instance metadata to confirm that the
        remapping is complete." No API request, and no lagging Describe."""
        if self._imds is None:
            return None
        try:
            path = f"network/interfaces/macs/{self._mac}/local-ipv4s"
            local = set((await run_blocking(self._imds.get, path)).split())
        except ImdsError as exc:
            self.ctx.log.debug("%s: IMDS cannot confirm the move (%s): the API will", self.ctx.instance.name, exc)
            self.confirms_locally = False  # until the next start: one slow source is enough
            return None
        return [self.me] * len(self.vips) if all(v in local for v in self.vips) else None

    @property
    def vips(self) -> list[str]:
        return [str(v.address) for v in self.ctx.instance.vips if v.address.version == 4]

    async def doctor(self) -> list[Finding]:
        from .aws_doctor import AwsDoctor, in_container

        return await AwsDoctor(self, in_container()).run()

    # ---------- the cloud side: ENIs ----------
    @reads_answers
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
        peers = [p for p in self.peer_addresses() if ":" not in p]
        if not peers:
            return
        found = await self._call("describe_network_interfaces", Filters=[
            {"Name": "addresses.private-ip-address", "Values": peers}])
        self.peer_targets = {ni["NetworkInterfaceId"]: ni.get("PrivateIpAddress", "")
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
                    route = {"RouteTableId": table["RouteTableId"], "DestinationCidrBlock": dest,
                                             "NetworkInterfaceId": eni}
                    if dest in present:
                        await self._call("replace_route", **route)
                        continue
                    try:
                        await self._call("create_route", **route)
                    except ProviderError as exc:
                        if exc.code != "RouteAlreadyExists":
                            raise
                        # another node created it since we read the table: point it to `eni` now
                        await self._call("replace_route", **route)
