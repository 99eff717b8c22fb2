"""`cloudvip doctor` on Hetzner Cloud: the metadata service, the token (valid, read-write, its
project's hourly request budget against what this config spends), the floating IP's network
zone, the alias IP's network and whether another server uses the address.

Read-write is proved without a change: an update of the floating IP (or the network) with an
empty body changes nothing, and a read-only token is refused it (403 `forbidden`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import ip_network
from typing import TYPE_CHECKING, Any

from cloudvip.blocking import run_blocking
from cloudvip.doctor.findings import Finding, fail, ok, warn
from cloudvip.provider import ProviderError

from .hetzner_settings import API

if TYPE_CHECKING:
    from .hetzner import HetznerProvider

#: a config using more than this share of the project's hourly budget leaves too little for failovers
BUDGET_SHARE = 1 / 3


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class HetznerDoctor:
    p: HetznerProvider

    @property
    def scope(self) -> str:
        return self.p.ctx.instance.name

    async def run(self) -> list[Finding]:
        from .hetzner import read_token

        s = self.p.settings
        out: list[Finding] = []
        if s.server_id is None or (s.mode == "alias_ip" and s.network is None):
            out.append(await self._metadata())
        try:
            token = read_token(s.token_file)
        except ProviderError as exc:
            return out + [fail(self.scope, "token", str(exc), "echo TOKEN > /etc/cloudvip/hcloud-token; "
                               "chmod 600 /etc/cloudvip/hcloud-token; set token_file in the cloud block")]
        started, up = await self.p.doctor_start()
        if not up:
            # a bad token makes start fail: say that first, with its own fix
            return out + [await self._token_valid(token)] + started
        out += started
        out += await self.p.doctor_discovery()  # the peers the budget counts and strangers are told from
        if self.p.discovered:
            await self.p.map_peers_early()  # their servers: a peer holding the VIP is no stranger
        out += [await self._token_valid(token), await self._token_writes(token)]
        if s.mode == "floating_ip":
            out += await self._floating_ip_zone(token)
        else:
            out += await self._alias_network(token)
        return out

    # ---------- HTTP, as the API answers (status, JSON, rate-limit headers) ----------
    def _endpoint(self) -> str:
        return (self.p.settings.endpoint or os.environ.get("HCLOUD_ENDPOINT") or API).rstrip("/")

    async def _request(self, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        import requests

        def go() -> Answer:
            r = requests.request(method, self._endpoint() + path, json=body, timeout=(2, 5),
                                 headers={"Authorization": f"Bearer {token}", "User-Agent": "cloudvip-doctor"})
            try:
                payload = r.json()
            except ValueError:
                payload = {}
            return Answer(r.status_code, payload if isinstance(payload, dict) else {}, dict(r.headers))

        try:
            return await run_blocking(go)
        except requests.RequestException as exc:
            raise ProviderError(f"{type(exc).__name__}: API unreachable: {str(exc)[:300]}") from None

    # ---------- checks ----------
    async def _metadata(self) -> Finding:
        url = self.p.settings.metadata_endpoint
        try:
            server = await self.p._metadata("instance-id")
        except ProviderError as exc:
            return fail(self.scope, "metadata", str(exc), f"curl {url}/instance-id must answer on the server; "
                        "a host firewall must let it through (see the firewall checks)")
        return ok(self.scope, "metadata", f"{url}: server {server}")

    async def _token_valid(self, token: str) -> Finding:
        try:
            answer = await self._request(token, "GET", f"/servers/{self.p.me or 0}" if self.p.me else "/servers")
        except ProviderError as exc:
            return fail(self.scope, "token", str(exc), f"the API at {self._endpoint()} must be reachable over HTTPS")
        if answer.status == 401:
            return fail(self.scope, "token", "the API refuses the token (401 unauthorized)",
                        "create an API token (Read & Write) in the Hetzner Console: project > Security > "
                        "API tokens, and put it in the token file")
        if answer.status >= 400:
            return fail(self.scope, "token", f"GET answered {answer.status}: {_error(answer)}", "")
        return self._budget(answer)

    def _budget(self, answer: Answer) -> Finding:
        h = {k.lower(): v for k, v in answer.headers.items()}
        limit, left = h.get("ratelimit-limit", ""), h.get("ratelimit-remaining", "")
        s = self.p.settings
        per_node = 3600 / s.reconcile_interval + (3600 / s.peer_refresh if s.peer_label else 0)
        nodes = 1 + len(self.p.peer_addresses())
        spend = round(per_node * nodes)
        text = f"valid; {left or '?'} of {limit or '?'} requests left this hour; this config spends ~{spend}/h " \
               f"({nodes} nodes, a read every {s.reconcile_interval:g} s each" + \
               (f", peers every {s.peer_refresh:g} s)" if s.peer_label else ")")
        if limit.isdigit() and spend > BUDGET_SHARE * int(limit):
            return warn(self.scope, "token", text + ": little is left for failovers and other tools",
                        f"raise reconcile_interval (now {s.reconcile_interval:g} s) in the cloud block")
        if left.isdigit() and int(left) < 100:
            return warn(self.scope, "token", text + ": the budget is nearly spent now",
                        "find what else uses this project's API (Terraform, monitoring) before a failover needs it")
        return ok(self.scope, "token", text)

    async def _token_writes(self, token: str) -> Finding:
        path = f"/floating_ips/{self.p._fip_id}" if self.p.settings.mode == "floating_ip" \
            else f"/networks/{self.p._network}"
        try:
            answer = await self._request(token, "PUT", path, {})
        except ProviderError as exc:
            return warn(self.scope, "token write", f"not checked: {exc}")
        if answer.status == 403:
            return fail(self.scope, "token write", f"the token is read-only (PUT {path} answered 403 "
                        f"{_error(answer)}): no failover can move the VIP",
                        "create a Read & Write API token in the Hetzner Console and replace the token file")
        if answer.status >= 400:
            return warn(self.scope, "token write", f"not checked: PUT {path} (an update that changes nothing) "
                        f"answered {answer.status} {_error(answer)}")
        return ok(self.scope, "token write", f"read-write (an update of {path} that changes nothing was accepted)")

    async def _floating_ip_zone(self, token: str) -> list[Finding]:
        fip = await self._request(token, "GET", f"/floating_ips/{self.p._fip_id}")
        me = await self._request(token, "GET", f"/servers/{self.p.me}")
        try:
            f = fip.body["floating_ip"]
            home, ours = f["home_location"], me.body["server"]["datacenter"]["location"]
        except (KeyError, TypeError):
            return [warn(self.scope, "floating ip", f"cannot read the floating IP {self.p._fip_id} or this server's "
                         f"location ({_error(fip) or _error(me)})")]
        what = f"floating IP {f.get('ip')} (id {f.get('id')}) homed in {home.get('name')} ({home.get('network_zone')})"
        out = []
        if home.get("network_zone") != ours.get("network_zone"):
            out.append(fail(self.scope, "floating ip", f"{what}, this server in {ours.get('name')} "
                            f"({ours.get('network_zone')}): it cannot be routed to this server",
                            f"create the floating IP in this server's zone: hcloud floating-ip create --type ipv4 "
                            f"--home-location {ours.get('name')}"))
        elif home.get("name") != ours.get("name"):
            out.append(warn(self.scope, "floating ip", f"{what}, this server in {ours.get('name')}: it works, but "
                            "Hetzner advises the floating IP's own location for the best routing",
                            f"hcloud floating-ip create --type ipv4 --home-location {ours.get('name')}"))
        else:
            out.append(ok(self.scope, "floating ip", f"{what}, like this server"))
        holder = f.get("server")
        if holder is not None and str(holder) != self.p.me and str(holder) not in self.p.peer_targets:
            out.append(warn(self.scope, "floating ip", f"assigned to server {holder}, which is no peer: the first "
                            "takeover takes it from that server", "make sure that server should not have it"))
        return out

    async def _alias_network(self, token: str) -> list[Finding]:
        net_id = self.p._network
        answer = await self._request(token, "GET", f"/networks/{net_id}")
        if answer.status == 404:
            return [fail(self.scope, "network", f"network {net_id} not found", "fix `network` in the cloud block "
                         "(hcloud network list)")]
        try:
            net = answer.body["network"]
            ranges = [ip_network(sub["ip_range"]) for sub in net.get("subnets", [])] or [ip_network(net["ip_range"])]
        except (KeyError, TypeError, ValueError):
            return [warn(self.scope, "network", f"cannot read network {net_id}: {_error(answer)}")]
        out = []
        for vip in self.p.ctx.instance.vips:
            if not any(vip.address in r for r in ranges):
                out.append(fail(self.scope, "network", f"VIP {vip.address} is outside network {net_id}'s subnets "
                                f"({', '.join(map(str, ranges))})", "pick a VIP inside a subnet of the network"))
        if not out:
            out.append(ok(self.scope, "network", f"VIP inside network {net_id} ({', '.join(map(str, ranges))})"))
        servers = await self._request(token, "GET", "/servers")
        ours = {self.p.me, *self.p.peer_targets}
        vips = {str(v.address) for v in self.p.ctx.instance.vips}
        for srv in servers.body.get("servers", []):
            for pn in srv.get("private_net", []):
                if pn.get("network") != net_id or str(srv.get("id")) in ours:
                    continue
                used = vips & ({str(pn.get("ip"))} | {str(a) for a in pn.get("alias_ips", [])})
                if used:
                    out.append(fail(self.scope, "network", f"{', '.join(sorted(used))} is used by server "
                                    f"{srv.get('name')} ({srv.get('id')}), which is no peer",
                                    f"remove it there (hcloud server change-alias-ips {srv.get('id')} --network "
                                    f"{net_id} --clear), or pick another VIP"))
        return out


def _error(answer: Answer) -> str:
    err = answer.body.get("error") if isinstance(answer.body, dict) else None
    return f"{err.get('code')}: {err.get('message')}" if isinstance(err, dict) else ""

