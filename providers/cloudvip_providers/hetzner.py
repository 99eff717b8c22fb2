"""Hetzner Cloud: move the VIP through the hcloud API (hcloud-python, imported only when used).

Modes: `floating_ip` (assign the floating IP to this server, wait for the action, verify) and
`alias_ip` (move the alias IP on a private network: the old holder's alias list shrinks, ours
grows, every other alias IP stays). In both the host carries the address too. Targets are
server ids; check, write, verify and the split-brain rules are CloudProvider's.
"""

from __future__ import annotations

import asyncio
import time
import os
from ipaddress import ip_address, ip_network
from typing import Any, Callable, TypeVar

from cloudvip.blocking import run_blocking
from cloudvip.config.model import IPAddress
from cloudvip.doctor.findings import Finding
from cloudvip.private_files import PrivateFileError, read_private
from cloudvip.provider import ProviderContext, ProviderError

from . import hetzner_settings
from .cloud import MALFORMED, CloudProvider, reads_answers, unreadable
from .hetzner_settings import API
from .metadata_http import open_direct

T = TypeVar("T")
#: (server id, network id) -> the lock of its alias list's read-modify-write (every instance of this agent)
_ALIAS_LOCKS: dict[tuple[int, int], asyncio.Lock] = {}
RETRYABLE_CODES = {"rate_limit_exceeded", "conflict", "locked", "timeout", "bad_gateway", "service_error",
                   "unavailable", "server_error", "maintenance", "action_failed"}


def read_token(path: str | None) -> str:
    """The API token from `path` (owner-only permissions required) or $HCLOUD_TOKEN."""
    if path is None:
        token = os.environ.get("HCLOUD_TOKEN", "").strip()
        if not token:
            raise ProviderError("no API token: set token_file in the cloud block or HCLOUD_TOKEN", retryable=False)
        return token
    try:
        token = read_private(path).strip()
    except PrivateFileError as exc:
        raise ProviderError(f"token file {exc}", retryable=False) from None
    if not token:
        raise ProviderError(f"token file {path} is empty", retryable=False)
    return token


def classify(exc: Exception) -> ProviderError:
    """Map an hcloud/requests exception to a ProviderError (never with the token in it)."""
    from hcloud import APIException
    from requests import RequestException

    if isinstance(exc, APIException):
        code = exc.code
        retryable = code in RETRYABLE_CODES or (isinstance(code, int) and (code >= 500 or code == 429))
        # one request comes back every second: after a 429, the next try waits at least that
        wait = 1.0 if code in ("rate_limit_exceeded", 429) else 0.0
        spent = " (the project's hourly request budget is spent)" if code in ("rate_limit_exceeded", 429) else ""
        return ProviderError(f"{code}: {exc.message}{spent}", retryable=retryable, retry_after=wait,
                             code=str(code))
    if isinstance(exc, RequestException):
        # requests names the URL and the cause, never the headers (the token)
        return ProviderError(f"{type(exc).__name__}: API unreachable: {str(exc)[:300]}")
    if isinstance(exc, MALFORMED):  # hcloud could not build its objects from the answer
        return unreadable(exc)
    return ProviderError(f"{type(exc).__name__}: {exc}", retryable=False)


class HetznerProvider(CloudProvider):
    name = "hetzner"

    parse_settings = staticmethod(hetzner_settings.parse)

    def __init__(self, ctx: ProviderContext) -> None:
        settings: hetzner_settings.HetznerSettings = self.checked_settings(ctx)
        super().__init__(ctx, on_host=True)  # Hetzner requires the OS to carry both kinds of address
        self.settings = settings
        self.label = f"hetzner {settings.mode}"
        self.reconcile_interval = settings.reconcile_interval
        self.peer_refresh = settings.peer_refresh if settings.peer_label else None
        self.operation_timeout = settings.operation_timeout
        self._hc: Any = None
        self._fip_id = 0
        self._network = 0
        self._action_took = 0.0  # seconds the last action we waited for ran
        if settings.server_id is None or (settings.mode == "alias_ip" and settings.network is None):
            self.metadata_url = settings.metadata_endpoint

    # ---------- start: discovery and client ----------
    async def start(self) -> None:
        s = self.settings
        await self.start_host()
        token = read_token(s.token_file)
        server_id = s.server_id or int(await self._metadata("instance-id"))
        self.me = str(server_id)
        self._hc = await run_blocking(self._client, token)  # pay import and connection costs now
        if s.mode == "floating_ip":
            self._fip_id = await self._floating_ip_id()
        else:
            self._network = s.network or await self._network_of_vip()
        await self.map_peers_early()
        self.ctx.log.info("%s: hetzner %s on server %s (%s)", self.ctx.instance.name, s.mode, server_id,
                          f"floating IP {self._fip_id}" if s.mode == "floating_ip" else f"network {self._network}")

    def _client(self, token: str) -> Any:
        from hcloud import Client

        endpoint = self.settings.endpoint or os.environ.get("HCLOUD_ENDPOINT") or API
        # hcloud retries a timeout, 502/504, conflict and rate_limit_exceeded itself (up to 5
        # times, backing off); the mover's operation_timeout bounds the whole call whatever it does
        return Client(token, api_endpoint=endpoint, application_name="cloudvip", timeout=(2, 5))

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await run_blocking(fn, *args, **kwargs)
        except Exception as exc:
            raise classify(exc) from None

    async def _metadata(self, path: str) -> str:
        url = f"{self.settings.metadata_endpoint.rstrip('/')}/{path}"

        def get() -> str:
            with open_direct(url, 1.0) as resp:
                return str(resp.read().decode().strip())
        try:
            return await run_blocking(get)
        except OSError as exc:
            raise ProviderError(f"metadata {url}: {exc} (set server_id/network in the cloud block to run "
                                "without the metadata service)", retryable=False) from None

    async def _floating_ip_id(self) -> int:
        """The configured floating IP, or the one containing our first VIP."""
        want = self.settings.floating_ip
        if want is not None and want.isdigit():
            return int(want)
        target = ip_address(want) if want else self.ctx.instance.vips[0].address
        fips = await self._call(self._hc.floating_ips.get_all)
        for f in fips:
            if target in ip_network(f.ip, strict=False):
                return int(f.id)
        raise ProviderError(f"no floating IP contains {target}", retryable=False)

    async def _network_of_vip(self) -> int:
        """The private network (from the metadata service) whose range contains our first VIP."""
        import yaml

        nets = yaml.safe_load(await self._metadata("private-networks")) or []
        vip = self.ctx.instance.vips[0].address
        for net in nets:
            if vip in ip_network(str(net.get("network", "")), strict=False) and net.get("network_id"):
                return int(net["network_id"])
        raise ProviderError(f"this server is in no private network containing {vip} (set network)",
                            retryable=False)

    # ---------- the cloud side: server ids ----------
    def _alias_ips(self, server: Any) -> list[str]:
        return next((list(p.alias_ips) for p in server.private_net or []
                     if int(p.network.id) == self._network), [])

    def _addresses(self, server: Any) -> list[str]:
        ips = [str(p.ip) for p in server.private_net or []]
        ipv4 = server.public_net.ipv4 if server.public_net else None
        return ips + ([str(ipv4.ip)] if ipv4 is not None else [])

    async def _holders(self) -> list[str]:
        if self.settings.mode == "floating_ip":
            fip = await self._call(self._hc.floating_ips.get_by_id, self._fip_id)
            return [str(fip.server.id) if fip.server is not None else ""]
        servers = await self._call(self._hc.servers.get_all)
        return [",".join(sorted(str(s.id) for s in servers if str(v.address) in self._alias_ips(s)))
                for v in self.ctx.instance.vips]

    async def _point_to(self, target: str) -> None:
        from hcloud.servers.domain import Server

        from hcloud.floating_ips.domain import FloatingIP

        hc = self._hc
        if self.settings.mode == "floating_ip":
            sent = time.monotonic()
            action = await self._call(hc.floating_ips.assign, FloatingIP(id=self._fip_id), Server(id=int(target)))
            await self._finished(action, sent)
            return
        # an alias IP belongs to one server at a time: shrink the holder's list, then grow ours
        vips = {str(v.address) for v in self.ctx.instance.vips}
        for server in await self._call(hc.servers.get_all):
            if str(server.id) != target and vips & set(self._alias_ips(server)):
                await self._change_alias_ips(server.id, lambda current: [ip for ip in current if ip not in vips])
        await self._change_alias_ips(int(target), lambda current: current + sorted(vips - set(current)))

    async def _change_alias_ips(self, server_id: int, change: Callable[[list[str]], list[str]]) -> None:
        """A read-modify-write of one server's alias list on our network, until its action has
        finished, one at a time per server and network in this agent: two instances on one
        server must not each write a list without the other's alias IP."""
        from hcloud.networks.domain import Network

        async with _ALIAS_LOCKS.setdefault((server_id, self._network), asyncio.Lock()):
            server = await self._call(self._hc.servers.get_by_id, server_id)
            sent = time.monotonic()
            action = await self._call(self._hc.servers.change_alias_ips, server, Network(id=self._network),
                                      change(self._alias_ips(server)))
            await self._finished(action, sent)

    async def _finished(self, action: Any, sent: float) -> None:
        """Poll the action every poll_interval until it is no longer running (our own loop, not
        hcloud's: a sleep here is cancelled with the operation when its deadline passes). `sent`:
        when the request that started it left; the action runs from the API's receipt, not from
        its answer, so the time taken counts from there."""
        while action.status == "running":
            await asyncio.sleep(self.settings.poll_interval)
            await self._call(action.reload)
        if action.status != "success":
            raise ProviderError(f"action {action.command} {action.status}: {action.error}")
        self._action_took = time.monotonic() - sent

    def handover_grace(self) -> float:
        """Also twice the last action we waited for: a master's claim runs as an action about
        that long, the floating IP pointing to us meanwhile; handing it over then would be a
        second write (or a 423 `locked` while the claim runs)."""
        return max(super().handover_grace(), 2 * self._action_took)

    async def doctor(self) -> list[Finding]:
        from .hetzner_doctor import HetznerDoctor

        return await HetznerDoctor(self).run()

    async def _map_peers(self) -> None:
        peers = set(self.peer_addresses())
        if not peers:
            return
        servers = await self._call(self._hc.servers.get_all)
        self.peer_targets = {str(s.id): next(a for a in self._addresses(s) if a in peers)
                             for s in servers if peers & set(self._addresses(s))}

    @reads_answers
    async def discover_peers(self) -> list[IPAddress]:
        """The servers carrying peer_label, ourselves excluded: their address on our network
        (alias_ip), or their first private address, or their public IPv4."""
        if self.settings.peer_label is None:
            return []
        key, value = self.settings.peer_label
        servers = await self._call(self._hc.servers.get_all, label_selector=f"{key}={value}")
        found = []
        for s in servers:
            if str(s.id) == self.me:
                continue
            on_net = [str(p.ip) for p in s.private_net or [] if int(p.network.id) == self._network]
            addrs = on_net or self._addresses(s)
            if addrs:
                found.append(ip_address(addrs[0]))
        self.discovered = sorted(set(found), key=lambda a: (a.version, int(a)))
        return list(self.discovered)
