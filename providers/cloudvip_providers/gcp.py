"""Google Cloud: move the VIP through the Compute Engine API (google-cloud-compute, REST
transport, imported only when this provider is used).

Modes: `alias_ip` (the VIP /32 as an alias IP range: removed from the holder's network interface,
then added to ours, each an `updateNetworkInterface` with the interface's fingerprint and a
zonal operation waited for) and `route` (a static route VIP/32 with `nextHopInstance` = us:
inserted, or deleted and inserted, each a global operation). In both the host carries the
address too. Targets are "ZONE/INSTANCE"; check, write, verify and the split-brain rules are
CloudProvider's.

`updateNetworkInterface` is sent through google-auth's AuthorizedSession (the session the
client itself uses): the generated client drops an empty `aliasIpRanges` list from the JSON
body, and the API, with PATCH semantics, then keeps the ranges (googleapis/google-cloud-python
#11931): the holder's last alias range could not be removed.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Callable, TypeVar

from cloudvip.blocking import run_blocking
from cloudvip.config.model import IPAddress
from cloudvip.doctor.findings import Finding
from cloudvip.provider import ProviderContext, ProviderError

from . import gcp_settings
from .cloud import CloudProvider, reads_answers
from .metadata_http import open_direct

T = TypeVar("T")
API = "https://compute.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/compute"
FINGERPRINT_TRIES = 3  # re-read and retry an update whose fingerprint went stale meanwhile
#: errors that say "another change is under way": a peer's move still running (its operation
#: holds the address, or the instance), which retrying shortly resolves
BUSY_REASONS = {"resourceNotReady", "resourceInUseByAnotherResource", "conflict", "alreadyExists"}


def retryable(status: int, reason: str, message: str) -> bool:
    return status in (408, 429) or status >= 500 or reason in BUSY_REASONS or \
        (status == 400 and "already being used" in message)


def classify(exc: Exception) -> ProviderError:
    """Map a google-api-core / google-auth / requests exception to a ProviderError: retryable
    for throttling, 5xx, timeouts and an unreachable API or token service."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc
    from requests import RequestException

    if isinstance(exc, gexc.GoogleAPICallError):
        code = int(exc.code or 0)
        first = exc.errors[0] if exc.errors else None
        reason = str(first.get("reason", "") if isinstance(first, dict) else (exc.reason or ""))
        return ProviderError(f"{code} {reason or type(exc).__name__}: {exc.message}",
                             retryable=retryable(code, reason, str(exc.message)), code=reason or str(code))
    if isinstance(exc, (aexc.TransportError, aexc.RefreshError)):
        return ProviderError(f"credentials: {exc}", retryable=True)
    if isinstance(exc, aexc.DefaultCredentialsError):
        return ProviderError(f"no credentials: {exc}", retryable=False)
    if isinstance(exc, RequestException):
        return ProviderError(f"{type(exc).__name__}: API unreachable: {str(exc)[:300]}")
    return ProviderError(f"{type(exc).__name__}: {exc}", retryable=False)


@dataclass(frozen=True, slots=True)
class Identity:
    project: str
    zone: str
    instance: str
    nic: str  # nic0, nic1 ...
    network: str  # the NIC's VPC network's name


class GcpProvider(CloudProvider):
    name = "gcp"

    parse_settings = staticmethod(gcp_settings.parse)

    def __init__(self, ctx: ProviderContext) -> None:
        settings: gcp_settings.GcpSettings = self.checked_settings(ctx)
        super().__init__(ctx, on_host=True)  # an alias IP or a routed address: the OS must carry it
        self.settings = settings
        self.label = f"gcp {settings.mode}"
        self.reconcile_interval = settings.reconcile_interval
        self.operation_timeout = settings.operation_timeout
        self.peer_refresh = settings.peer_refresh if settings.peer_label else None
        self.ident: Identity | None = None
        self._clients: dict[str, Any] = {}
        self._session: Any = None
        self._move_took = 0.0  # seconds our last move (its writes and their operations) took
        if not (settings.project and settings.zone and settings.instance):
            self.metadata_url = settings.metadata_endpoint

    # ---------- start: identity, credentials, clients ----------
    async def start(self) -> None:
        await self.start_host()
        self.ident = await self._identity()
        await run_blocking(self._connect)  # pay imports, credentials and connections now
        self.me = f"{self.ident.zone}/{self.ident.instance}"
        await self.map_peers_early()
        self.ctx.log.info("%s: gcp %s on %s in %s (%s, network %s)", self.ctx.instance.name, self.settings.mode,
                          self.ident.instance, self.ident.zone, self.ident.nic, self.ident.network)

    async def _identity(self) -> Identity:
        s = self.settings
        project = s.project or await self._metadata("project/project-id")
        zone = s.zone or (await self._metadata("instance/zone")).rsplit("/", 1)[-1]
        instance = s.instance or await self._metadata("instance/name")
        nic, network = s.network_interface, s.network
        if (nic is None and s.mode == "alias_ip") or (network is None and s.mode == "route"):
            found_nic, found_net = await self._nic_of_interface()
            nic, network = nic or found_nic, network or found_net
        return Identity(project, zone, instance, nic or "nic0", network or "default")

    async def _nic_of_interface(self) -> tuple[str, str]:
        """The metadata's NIC with the MAC of our VRRP interface, and its network's name."""
        import json

        link = await self.ctx.host.link(self.ctx.instance.interface)
        nics = json.loads(await self._metadata("instance/network-interfaces/?recursive=true"))
        for i, nic in enumerate(nics):
            if str(nic.get("mac", "")).lower() == link.mac.lower():
                return f"nic{i}", str(nic.get("network", "")).rsplit("/", 1)[-1]
        raise ProviderError(f"no network interface of this instance has {link.name}'s MAC {link.mac} (set "
                            "network_interface in the cloud block)", retryable=False)

    async def _metadata(self, path: str) -> str:
        import urllib.request

        url = f"{self.settings.metadata_endpoint.rstrip('/')}/{path}"

        def get() -> str:
            req = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
            with open_direct(req, 1.0) as resp:
                return str(resp.read().decode().strip())
        try:
            return await run_blocking(get)
        except OSError as exc:
            raise ProviderError(f"metadata {url}: {exc} (set project, zone and instance in the cloud block to "
                                "run without the metadata server)", retryable=False) from None

    def _connect(self) -> None:
        import google.auth
        from google.api_core.client_options import ClientOptions
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import compute_v1

        creds, _ = google.auth.default(scopes=[SCOPE])
        endpoint = self._endpoint()
        options = ClientOptions(api_endpoint=endpoint)
        kinds = {"instances": compute_v1.InstancesClient, "zone_ops": compute_v1.ZoneOperationsClient,
                 "routes": compute_v1.RoutesClient, "global_ops": compute_v1.GlobalOperationsClient}
        self._clients = {k: cls(credentials=creds, client_options=options, transport="rest")
                         for k, cls in kinds.items()}
        self._session = AuthorizedSession(creds)  # type: ignore[no-untyped-call]

    def _endpoint(self) -> str:
        return (self.settings.endpoint or os.environ.get("CLOUDVIP_GCP_ENDPOINT") or API).rstrip("/")

    async def _call(self, client: str, method: str, **kwargs: Any) -> Any:
        started = time.monotonic()
        fn: Callable[..., Any] = getattr(self._clients[client], method)
        try:
            # one attempt per call, bounded: retries are the mover's (tenacity), VRRP decides between them
            return await run_blocking(fn, retry=None, timeout=10.0, **kwargs)
        except Exception as exc:
            raise classify(exc) from None
        finally:
            self.ctx.log.debug("%s: compute %s.%s %.1f ms", self.ctx.instance.name, client, method,
                               (time.monotonic() - started) * 1000)

    # ---------- operations ----------
    async def _wait(self, op: Any, zone: str | None) -> None:
        """Poll the operation until DONE (our own loop: a sleep here is cancelled with the whole
        operation when its deadline passes); its error is the call's."""
        from google.cloud import compute_v1

        assert self.ident is not None
        while op.status != compute_v1.Operation.Status.DONE:
            await asyncio.sleep(self.settings.poll_interval)
            if zone is not None:
                op = await self._call("zone_ops", "get", project=self.ident.project, zone=zone, operation=op.name)
            else:
                op = await self._call("global_ops", "get", project=self.ident.project, operation=op.name)
        errors = list(op.error.errors) if op.error else []
        if errors:
            raise ProviderError(f"operation {op.name} failed: {errors[0].code}: {errors[0].message}",
                                code=str(errors[0].code))

    # ---------- the cloud side ----------
    @property
    def vips(self) -> list[str]:
        return [str(v.address) for v in self.ctx.instance.vips]

    def _zones(self) -> list[str]:
        assert self.ident is not None
        return list(self.settings.zones) or [self.ident.zone]

    def route_name(self, vip: str) -> str:
        return self.settings.route_name or "cloudvip-" + vip.replace(".", "-")

    async def _instances(self, label: tuple[str, str] | None = None) -> list[Any]:
        assert self.ident is not None
        out: list[Any] = []
        for zone in self._zones():
            kwargs: dict[str, Any] = {"project": self.ident.project, "zone": zone}
            if label is not None:
                from google.cloud import compute_v1

                kwargs = {"request": compute_v1.ListInstancesRequest(
                    project=self.ident.project, zone=zone, filter=f'labels.{label[0]} = "{label[1]}"')}
            pager = await self._call("instances", "list", **kwargs)
            out += await run_blocking(list, pager)  # further pages are fetched by the pager
        return out

    @staticmethod
    def _target(inst: Any) -> str:
        return f"{str(inst.zone).rsplit('/', 1)[-1]}/{inst.name}"

    async def _holders(self) -> list[str]:
        assert self.ident is not None
        if self.settings.mode == "alias_ip":
            instances = await self._instances()
            return [",".join(sorted(self._target(i) for i in instances
                                    if any(f"{vip}/32" in _aliases(n) for n in i.network_interfaces)))
                    for vip in self.vips]
        out = []
        for vip in self.vips:
            route = await self._route(vip)
            out.append(_hop_target(route.next_hop_instance) if route is not None else "")
        return out

    async def _route(self, vip: str) -> Any | None:
        assert self.ident is not None
        try:
            return await self._call("routes", "get", project=self.ident.project, route=self.route_name(vip))
        except ProviderError as exc:
            if exc.code in ("404", "notFound"):
                return None
            raise

    async def _point_to(self, target: str) -> None:
        started = time.monotonic()
        if self.settings.mode == "alias_ip":
            await self._move_alias(target)
        else:
            for vip in self.vips:
                await self._point_route(vip, target)
        self._move_took = time.monotonic() - started

    def nobody_grace(self) -> float:
        """A move is two writes (remove then add; delete then insert): in between the cloud points
        to nobody. Give a peer's move as long as a hand-over waits before re-asserting."""
        return self.handover_grace()

    def handover_grace(self) -> float:
        """Also twice our last move: a master's claim is two writes, each an operation that runs
        a while, the cloud pointing to us meanwhile; handing over then would be two more writes."""
        return max(super().handover_grace(), 2 * self._move_took)

    # ---------- alias_ip ----------
    async def _move_alias(self, target: str) -> None:
        """Remove our VIPs from every other instance's NIC, then add them to `target`'s."""
        cidrs = {f"{vip}/32" for vip in self.vips}
        for inst in await self._instances():
            if self._target(inst) == target:
                continue
            for nic in inst.network_interfaces:
                if cidrs & set(_aliases(nic)):
                    await self._change_aliases(self._target(inst), str(nic.name),
                                               lambda current: [c for c in current if c not in cidrs])
        await self._change_aliases(target, self._nic_of(target),
                                   lambda current: current + sorted(cidrs - set(current)))

    def _nic_of(self, target: str) -> str:
        """Our NIC for ourselves; for a peer, the NIC named as ours (the pair's NICs are alike)."""
        assert self.ident is not None
        return self.ident.nic

    async def _change_aliases(self, target: str, nic: str, change: Callable[[list[str]], list[str]]) -> None:
        """A read-modify-write of one NIC's alias ranges with its fingerprint, retried on a stale
        fingerprint (someone else changed the NIC between our read and our write)."""
        assert self.ident is not None
        zone, name = target.split("/", 1)
        for attempt in range(FINGERPRINT_TRIES):
            inst = await self._call("instances", "get", project=self.ident.project, zone=zone, instance=name)
            current = next((n for n in inst.network_interfaces if n.name == nic), None)
            if current is None:
                raise ProviderError(f"instance {name} has no network interface {nic}", retryable=False)
            wanted = change(_aliases(current))
            if wanted == _aliases(current):
                return
            try:
                op = await self._patch_nic(zone, name, nic, str(current.fingerprint), wanted)
            except ProviderError as exc:
                if exc.code == "conditionNotMet" and attempt + 1 < FINGERPRINT_TRIES:
                    continue
                raise
            await self._wait(op, zone)
            return

    async def _patch_nic(self, zone: str, name: str, nic: str, fingerprint: str, ranges: list[str]) -> Any:
        """instances.updateNetworkInterface through the authorized session (see the module's
        note): `aliasIpRanges` is always in the body, empty too."""
        from google.cloud import compute_v1

        assert self.ident is not None
        url = (f"{self._endpoint()}/compute/v1/projects/{self.ident.project}/zones/{zone}/instances/{name}"
               f"/updateNetworkInterface")
        body = {"fingerprint": fingerprint, "aliasIpRanges": [{"ipCidrRange": r} for r in ranges]}

        def patch() -> Any:
            return self._session.patch(url, params={"networkInterface": nic}, json=body, timeout=10.0)

        started = time.monotonic()
        try:
            resp = await run_blocking(patch)
        except Exception as exc:
            raise classify(exc) from None
        finally:
            self.ctx.log.debug("%s: compute updateNetworkInterface %.1f ms", self.ctx.instance.name,
                               (time.monotonic() - started) * 1000)
        if resp.status_code >= 400:
            raise _http_error(resp)
        return compute_v1.Operation.from_json(resp.text, ignore_unknown_fields=True)

    # ---------- route ----------
    async def _point_route(self, vip: str, target: str) -> None:
        from google.cloud import compute_v1

        assert self.ident is not None
        route = await self._route(vip)
        if route is not None and _hop_target(route.next_hop_instance) == target:
            return
        if route is not None:
            op = await self._call("routes", "delete", project=self.ident.project, route=route.name)
            await self._wait(op, None)
        zone, name = target.split("/", 1)
        resource = compute_v1.Route(
            name=self.route_name(vip), dest_range=f"{vip}/32", priority=self.settings.route_priority,
            tags=list(self.settings.route_tags),
            network=f"projects/{self.ident.project}/global/networks/{self.ident.network}",
            next_hop_instance=f"projects/{self.ident.project}/zones/{zone}/instances/{name}")
        op = await self._call("routes", "insert", project=self.ident.project, route_resource=resource)
        await self._wait(op, None)

    # ---------- peers ----------
    async def _map_peers(self) -> None:
        peers = set(self.peer_addresses())
        if not peers:
            return
        self.peer_targets = {self._target(i): str(n.network_i_p) for i in await self._instances()
                             for n in i.network_interfaces if str(n.network_i_p) in peers}

    @reads_answers
    async def discover_peers(self) -> list[IPAddress]:
        if self.settings.peer_label is None:
            return []
        found = await self._instances(self.settings.peer_label)
        peers = sorted({ip_address(str(i.network_interfaces[0].network_i_p)) for i in found
                        if self._target(i) != self.me and i.network_interfaces and str(i.status) == "RUNNING"},
                       key=lambda a: (a.version, int(a)))
        self.discovered = list(peers)
        return self.discovered

    async def doctor(self) -> list[Finding]:
        started, up = await self.doctor_start()
        return started + (await self.doctor_discovery() if up else [])


def _aliases(nic: Any) -> list[str]:
    return [str(r.ip_cidr_range) for r in nic.alias_ip_ranges]


def _hop_target(url: str) -> str:
    """".../zones/Z/instances/NAME" -> "Z/NAME"."""
    parts = str(url).rstrip("/").split("/")
    return f"{parts[-3]}/{parts[-1]}" if len(parts) >= 4 and parts[-2] == "instances" else str(url)


def _http_error(resp: Any) -> ProviderError:
    """Google's JSON error body (or whatever came back) as a ProviderError."""
    try:
        err = resp.json().get("error", {})
        reason = str((err.get("errors") or [{}])[0].get("reason", ""))
        message = str(err.get("message", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        reason, message = "", resp.text[:200]
    status = int(resp.status_code)
    return ProviderError(f"{status} {reason}: {message}", retryable=retryable(status, reason, message),
                         code=reason or str(status))
