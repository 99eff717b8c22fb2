"""Azure: move the VIP through Azure Resource Manager (azure-mgmt-network with azure-identity,
imported only when this provider is used).

Modes: `route_table` (a user-defined route VIP/32 -> `VirtualAppliance` = our private IP in
each configured route table, created or updated: published experience puts it at about 10 s)
and `ip_config` (the VIP as a secondary IP configuration: removed from the holder's NIC, then
added to ours, each NIC update with its ETag: 30-90 s, sometimes minutes). Both are long-running
operations, waited for under the operation's deadline. The host carries the address in both.
Targets: our private IP (the next hop) in route_table mode, the NIC's name in ip_config mode;
check, write, verify and the split-brain rules are CloudProvider's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Callable

from cloudvip.blocking import run_blocking
from cloudvip.config.model import IPAddress
from cloudvip.doctor.findings import Finding
from cloudvip.provider import ProviderContext, ProviderError

from . import azure_settings
from .cloud import CloudProvider, reads_answers
from .metadata_http import open_direct

ARM = "https://management.azure.com"
IMDS_API = "2021-02-01"
COMPUTE_API = "2024-07-01"  # Microsoft.Compute's virtualMachines list (peer discovery by tag)
ETAG_TRIES = 3  # re-read and retry a NIC update whose ETag went stale meanwhile
#: ARM codes that say "another change is under way" (a peer's update still running, its
#: operation holding the address), which retrying shortly resolves
BUSY_CODES = {"AnotherOperationInProgress", "RetryableError", "PrivateIPAddressInUse", "Conflict",
              "OperationPreempted", "ReferencedResourceNotProvisioned"}
TABLE_ID = re.compile(r"/subscriptions/[^/]+/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
                      r"routeTables/(?P<name>[^/]+)", re.IGNORECASE)


def classify(exc: Exception) -> ProviderError:
    """Map an azure-core / azure-identity exception to a ProviderError: retryable for throttling
    (with ARM's Retry-After), 5xx, a change under way, timeouts and an unreachable API."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError, \
        ServiceResponseError

    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = int(exc.status_code)
        code = str(getattr(exc.error, "code", "") or "") if exc.error is not None else ""
        message = str(getattr(exc.error, "message", "") or exc.message or exc)
        after = str(getattr(exc.response, "headers", {}).get("Retry-After", ""))
        retryable = status in (408, 429) or status >= 500 or code in BUSY_CODES
        return ProviderError(f"{status} {code or type(exc).__name__}: {message[:300]}", retryable=retryable,
                             retry_after=float(after) if after.isdigit() else 0.0, code=code or str(status))
    if isinstance(exc, ClientAuthenticationError):  # no HTTP status: the credential itself failed
        return ProviderError(f"credentials: {str(exc).splitlines()[0][:300]}", retryable=True)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return ProviderError(f"{type(exc).__name__}: API unreachable: {str(exc)[:300]}")
    return ProviderError(f"{type(exc).__name__}: {exc}", retryable=False)


@dataclass(frozen=True, slots=True)
class Identity:
    subscription: str
    resource_group: str
    vm: str
    nic: str
    ip: str  # the NIC's primary private address: the next hop we name in route_table mode


def _mac(text: str) -> str:
    """A MAC in any of Azure's spellings (000D3A..., 00-0D-3A-...) or Linux's, comparable."""
    return re.sub(r"[^0-9a-f]", "", text.lower())


class AzureProvider(CloudProvider):
    name = "azure"

    parse_settings = staticmethod(azure_settings.parse)

    def __init__(self, ctx: ProviderContext) -> None:
        settings: azure_settings.AzureSettings = self.checked_settings(ctx)
        super().__init__(ctx, on_host=True)  # a routed or secondary address: the OS must carry it
        self.settings = settings
        self.label = f"azure {settings.mode}"
        self.reconcile_interval = settings.reconcile_interval
        self.operation_timeout = settings.operation_timeout
        self.peer_refresh = settings.peer_refresh if settings.peer_tag else None
        self.ident: Identity | None = None
        self._net: Any = None
        self._move_took = 0.0  # seconds our last move (its writes and their operations) took
        self._updating = False  # ip_config: the last read saw a peer's NIC (or ours) with an update running
        if not (settings.subscription_id and settings.resource_group and settings.vm_name):
            self.metadata_url = f"{settings.imds_endpoint.rstrip('/')}/metadata/instance"

    # ---------- start: identity, credentials, client ----------
    async def start(self) -> None:
        s = self.settings
        await self.start_host()
        meta: dict[str, Any] = {}
        if not (s.subscription_id and s.resource_group and s.vm_name):
            meta = await self._instance_metadata()
        compute = meta.get("compute", {})
        sub = s.subscription_id or str(compute["subscriptionId"])
        group = s.resource_group or str(compute["resourceGroupName"])
        vm = s.vm_name or str(compute["name"])
        await run_blocking(self._connect, sub)  # pay imports, credentials and the connection now
        nic = await self._own_nic(group)
        self.ident = Identity(sub, group, vm, str(nic.name), _primary_ip(nic))
        self.me = self.ident.nic if s.mode == "ip_config" else self.ident.ip
        if s.mode == "route_table" and not nic.enable_ip_forwarding:
            self.ctx.log.warning("%s: IP forwarding is off on %s: Azure drops packets routed to it for an address "
                                 "that is not its own (the VIP); turn it on", self.ctx.instance.name, nic.name)
        await self.map_peers_early()
        self.ctx.log.info("%s: azure %s on VM %s, NIC %s (%s), resource group %s", self.ctx.instance.name, s.mode,
                          vm, nic.name, self.ident.ip, group)

    async def _instance_metadata(self) -> dict[str, Any]:
        import urllib.request

        url = f"{self.settings.imds_endpoint.rstrip('/')}/metadata/instance?api-version={IMDS_API}"

        def get() -> dict[str, Any]:
            req = urllib.request.Request(url, headers={"Metadata": "true"})
            with open_direct(req, 1.0) as resp:
                found = json.loads(resp.read().decode())
            if not isinstance(found, dict) or not isinstance(found.get("compute"), dict):
                raise ValueError("no compute section")
            return found
        try:
            return await run_blocking(get)
        except (OSError, ValueError) as exc:
            raise ProviderError(f"instance metadata {url}: {exc} (set subscription_id, resource_group and vm_name "
                                "in the cloud block to run without IMDS)", retryable=False) from None

    def _connect(self, subscription: str) -> None:
        from azure.identity import DefaultAzureCredential
        from azure.mgmt.network import NetworkManagementClient

        # one attempt per call, bounded: retries are the mover's (tenacity), VRRP decides between them
        self._net = NetworkManagementClient(DefaultAzureCredential(), subscription,
                                            base_url=(self.settings.endpoint or ARM).rstrip("/"),
                                            retry_total=0, connection_timeout=3, read_timeout=10)

    async def _own_nic(self, group: str) -> Any:
        """Our NIC: the one named in the config, or the one with our VRRP interface's MAC."""
        if self.settings.network_interface:
            return await self._call(self._net.network_interfaces.get, group, self.settings.network_interface)
        link = await self.ctx.host.link(self.ctx.instance.interface)
        for nic in await self._nics(group):
            if _mac(str(nic.mac_address or "")) == _mac(link.mac):
                return nic
        raise ProviderError(f"no NIC in resource group {group} has {link.name}'s MAC {link.mac} (set "
                            "network_interface in the cloud block)", retryable=False)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return await run_blocking(fn, *args, **kwargs)
        except Exception as exc:
            raise classify(exc) from None
        finally:
            self.ctx.log.debug("%s: arm %s %.1f ms", self.ctx.instance.name, getattr(fn, "__name__", fn),
                               (time.monotonic() - started) * 1000)

    async def _nics(self, group: str) -> list[Any]:
        pager = await self._call(self._net.network_interfaces.list, group)
        return list(await self._call(list, pager))  # further pages are fetched by the pager

    async def _long_running(self, begin: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Start a long-running write and wait for its end (the SDK's poller follows
        Azure-AsyncOperation / Location and Retry-After; we look at it every poll_interval, so
        the wait is cancelled with the operation when its deadline passes); its error is ours."""
        poller = await self._call(begin, *args, polling_interval=self.settings.poll_interval, **kwargs)
        while not poller.done():
            await asyncio.sleep(self.settings.poll_interval)
        await self._call(poller.result, 0)

    # ---------- the cloud side ----------
    @property
    def vips(self) -> list[str]:
        return [str(v.address) for v in self.ctx.instance.vips]

    def route_name(self, vip: str) -> str:
        return self.settings.route_name or "cloudvip-" + vip.replace(".", "-")

    def ip_config_name(self, vip: str) -> str:
        return self.settings.ip_config_name or "cloudvip-" + vip.replace(".", "-")

    def _tables(self) -> list[tuple[str, str]]:
        """(resource group, name) of each configured route table."""
        assert self.ident is not None
        out = []
        for t in self.settings.route_tables:
            m = TABLE_ID.fullmatch(t)
            out.append((m.group("rg"), m.group("name")) if m else (self.ident.resource_group, t))
        return out

    async def _holders(self) -> list[str]:
        assert self.ident is not None
        if self.settings.mode == "ip_config":
            nics = await self._nics(self.ident.resource_group)
            # a move in flight shows as a peer's NIC (or ours) with an update running
            movers = set(self.peer_targets) | {self.me}
            self._updating = any(str(n.name) in movers and n.provisioning_state == "Updating" for n in nics)
            return [",".join(sorted(str(n.name) for n in nics if vip in _secondary_ips(n))) for vip in self.vips]
        out = []
        for group, name in self._tables():
            table = await self._call(self._net.route_tables.get, group, name)
            routes = {str(r.address_prefix): r for r in (table.routes or [])}
            for vip in self.vips:
                route = routes.get(f"{vip}/32")
                # compared, not str()'d: the SDK's enums are str subclasses that print their class
                hop = route is not None and route.next_hop_type == "VirtualAppliance"
                out.append(str(route.next_hop_ip_address or "") if hop and route is not None else "")
        return out

    async def _point_to(self, target: str) -> None:
        started = time.monotonic()
        if self.settings.mode == "ip_config":
            await self._move_ip_config(target)
        else:
            from azure.mgmt.network.models import Route

            # create-or-update needs no read first: every table's route is written at once
            await asyncio.gather(*(self._long_running(
                self._net.routes.begin_create_or_update, group, name, self.route_name(vip),
                # flattened keywords: what every azure-mgmt-network accepts (the typed overloads of
                # the newest list only `properties=`, which the older ones lack)
                Route(address_prefix=f"{vip}/32", next_hop_type="VirtualAppliance",  # type: ignore[call-overload]
                      next_hop_ip_address=target))
                for group, name in self._tables() for vip in self.vips))
        self._move_took = time.monotonic() - started

    def nobody_grace(self) -> float:
        """ip_config is two writes (remove, then add): in between the VIP is on nobody. While a
        peer's NIC (or ours) has an update running, give that move as long as a hand-over waits;
        with none running, nobody is moving it: re-assert at once (a NIC update takes 30-90 s,
        a grace for a move that is not there would be minutes of outage)."""
        return self.handover_grace() if self.settings.mode == "ip_config" and self._updating else 0.0

    def handover_grace(self) -> float:
        """Also twice our last move: a master's claim is a long-running operation, the cloud
        pointing to us meanwhile; handing over then would be another."""
        return max(super().handover_grace(), 2 * self._move_took)

    # ---------- ip_config ----------
    async def _move_ip_config(self, target: str) -> None:
        assert self.ident is not None
        vips = set(self.vips)
        listed = {str(n.name): n for n in await self._nics(self.ident.resource_group)}
        for name, nic in listed.items():
            if name != target and vips & set(_secondary_ips(nic)):
                await self._change_configs(name, lambda configs, _nic: [
                    c for c in configs if c.primary or str(c.private_ip_address) not in vips], nic)
        await self._change_configs(target, self._add_configs, listed.get(target))

    def _add_configs(self, configs: list[Any], nic: Any) -> list[Any]:
        from azure.mgmt.network.models import NetworkInterfaceIPConfiguration, Subnet

        have = {str(c.private_ip_address) for c in configs}
        primary = next((c for c in configs if c.primary), configs[0])
        return configs + [NetworkInterfaceIPConfiguration(  # type: ignore[call-overload]  # flattened: see Route
            name=self.ip_config_name(vip), private_ip_address=vip, private_ip_allocation_method="Static",
            primary=False, subnet=Subnet(id=primary.subnet.id)) for vip in self.vips if vip not in have]

    async def _change_configs(self, name: str, change: Callable[[list[Any], Any], list[Any]],
                              listed: Any | None = None) -> None:
        """A read-modify-write of one NIC's IP configurations with its ETag (If-Match), retried
        when the ETag went stale (someone changed the NIC between our read and our write). The
        NIC as the list just gave it (with its ETag) spares the first read."""
        assert self.ident is not None
        group = self.ident.resource_group
        for attempt in range(ETAG_TRIES):
            nic = listed if attempt == 0 and listed is not None else \
                await self._call(self._net.network_interfaces.get, group, name)
            current = list(nic.ip_configurations or [])
            wanted = change(current, nic)
            if [str(c.private_ip_address) for c in wanted] == [str(c.private_ip_address) for c in current]:
                return
            nic.ip_configurations = wanted
            try:
                await self._long_running(self._net.network_interfaces.begin_create_or_update, group, name, nic,
                                         headers={"If-Match": str(nic.etag)})
            except ProviderError as exc:
                if exc.code in ("412", "PreconditionFailed") and attempt + 1 < ETAG_TRIES:
                    continue
                raise
            return

    # ---------- peers ----------
    async def _map_peers(self) -> None:
        peers = set(self.peer_addresses())
        if not peers:
            return
        assert self.ident is not None
        if self.settings.mode == "route_table":
            self.peer_targets = {p: p for p in peers}
            return
        self.peer_targets = {str(n.name): _primary_ip(n) for n in await self._nics(self.ident.resource_group)
                             if _primary_ip(n) in peers}

    @reads_answers
    async def discover_peers(self) -> list[IPAddress]:
        """The primary addresses of the VMs in our resource group carrying peer_tag (their
        primary NIC's), ourselves excluded."""
        from azure.core.rest import HttpRequest

        if self.settings.peer_tag is None:
            return []
        assert self.ident is not None
        key, value = self.settings.peer_tag
        url: str | None = (f"{(self.settings.endpoint or ARM).rstrip('/')}/subscriptions/{self.ident.subscription}"
                           f"/resourceGroups/{self.ident.resource_group}/providers/Microsoft.Compute/virtualMachines"
                           f"?api-version={COMPUTE_API}")
        vms: list[dict[str, Any]] = []
        while url:
            resp = await self._call(self._net.send_request, HttpRequest("GET", url))
            if resp.status_code >= 400:
                await self._call(resp.raise_for_status)
            page = resp.json()
            vms += page["value"]
            url = page.get("nextLink")
        nic_names = {str(ref["id"]).rsplit("/", 1)[-1].lower() for vm in vms
                     if (vm.get("tags") or {}).get(key) == value and vm["name"] != self.ident.vm
                     for ref in vm["properties"]["networkProfile"]["networkInterfaces"]}
        found = {_primary_ip(n) for n in await self._nics(self.ident.resource_group)
                 if str(n.name).lower() in nic_names}
        self.discovered = sorted((ip_address(a) for a in found if a), key=lambda a: (a.version, int(a)))
        return self.discovered

    async def doctor(self) -> list[Finding]:
        started, up = await self.doctor_start()
        return started + (await self.doctor_discovery() if up else [])


def _primary_ip(nic: Any) -> str:
    configs = list(nic.ip_configurations or [])
    primary = next((c for c in configs if c.primary), configs[0] if configs else None)
    return str(primary.private_ip_address) if primary is not None else ""


def _secondary_ips(nic: Any) -> list[str]:
    return [str(c.private_ip_address) for c in (nic.ip_configurations or []) if not c.primary]
