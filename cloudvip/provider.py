"""The provider interface: how a VIP is taken, released and looked up.

Providers know nothing about VRRP. The agent calls them through a `VipMover`
(one per instance, serialized, latest desired state wins). Providers are found
through the entry-point group `cloudvip.providers`, so another cloud is a
package that registers one class:

    [project.entry-points."cloudvip.providers"]
    mycloud = "mycloud_cloudvip:MyCloudProvider"
"""

from __future__ import annotations

import abc
import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
import dataclasses
from importlib.metadata import entry_points
from pathlib import Path
from typing import Awaitable, Callable, TYPE_CHECKING, ClassVar, TypeVar

from .config import Config, ConfigError, load
from .config.diagnostics import Diagnostic, Diagnostics, Severity
from .config.model import GlobalDefs, IPAddress, VrrpInstance

if TYPE_CHECKING:
    from .doctor.findings import Finding
    from .hostnet import HostNetwork

T = TypeVar("T")
ENTRY_POINT_GROUP = "cloudvip.providers"
DEFAULT_PROVIDER = "linux"


class ProviderError(Exception):
    """A failed provider call. `retryable`: worth trying again (throttling, 5xx, timeouts);
    `retry_after`: the API said how long to wait at least (rate-limit headers); `code`: the
    API's own error code, where it gave one."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float = 0.0, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code


class Holder(str, Enum):
    SELF = "self"
    PEER = "peer"  # one of our VRRP peers: a split brain, or we are not master any more
    OTHER = "other"  # someone who is not a peer: a change behind our back
    NOBODY = "nobody"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HolderInfo:
    holder: Holder
    detail: str = ""  # e.g. the ENI or server holding it


def _always() -> bool:
    return True


@dataclass
class ProviderContext:
    instance: VrrpInstance
    global_defs: GlobalDefs
    host: "HostNetwork"
    log: logging.Logger
    #: does the state machine still want the VIP? (set by the VipMover). A cloud provider asks
    #: right before it writes: a node that stepped down during the ownership read (two nodes
    #: starting together both become master for a moment) then makes no claim at all.
    wanted: Callable[[], bool] = _always
    #: False in companion mode: keepalived adds and removes the host addresses itself
    manage_host: bool = True


class Provider(abc.ABC):
    name: ClassVar[str]
    #: seconds between ownership checks while holding the VIP (None: nothing to reconcile)
    reconcile_interval: float | None = None
    #: seconds one operation (start, take, holder, ...) may take in all, whatever calls, waits and
    #: lookups it makes: past it the caller abandons it (within_deadline)
    operation_timeout: float = 30.0

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.discovered: list[IPAddress] = []  # peers found in the cloud (tags, labels)

    @classmethod
    def check_config(cls, instance: VrrpInstance, diags: Diagnostics) -> None:
        """Validate the instance's `cloud` block (and anything else this provider needs)."""

    async def start(self) -> None:
        """Resolve interfaces, discover identity, create clients: before the first move."""

    @abc.abstractmethod
    async def take(self) -> bool:
        """Make this node the holder of the instance's VIPs. Must be idempotent. True when this
        node holds them afterwards; False when it made no claim (no longer master by then)."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Stop holding the VIPs on this node (never un-assign them from someone else)."""

    async def announce(self) -> None:
        """Re-announce held VIPs (gratuitous ARP / NA); nothing to do in most clouds."""

    async def observe(self) -> None:
        """While not holding, every reconcile interval: look at the cloud without changing it
        (a cloud provider reads who holds the VIP: its API connection stays open, so a takeover
        pays no TCP and TLS handshake, and the takeover needs no read before its write)."""

    #: seconds between peer discoveries (None: this provider does not discover peers)
    peer_refresh: float | None = None

    async def discover_peers(self) -> list[IPAddress]:
        """The addresses of the other nodes of this instance, found in the cloud (for example by
        a tag): they become unicast peers beside the configured ones."""
        return []

    async def yield_to(self, master: IPAddress) -> None:
        """We stepped down for `master` (after a split brain): if the cloud still points to us,
        hand the VIP to that master. Never takes it from anyone but ourselves."""

    def handover_grace(self) -> float:
        """Seconds the mover waits before yield_to() (skipped if we become master meanwhile): a
        master that heard us re-asserts by itself, and then there is nothing to hand over."""
        return 0.0

    def nobody_grace(self) -> float:
        """Seconds the cloud may point to nobody during a peer's move (0: moves are one write,
        so "nobody" is a change behind our back, re-asserted at once)."""
        return 0.0

    @abc.abstractmethod
    async def holder(self) -> HolderInfo:
        """Who holds the VIP right now, as the provider sees it."""

    async def close(self) -> None:
        """Release resources (not the VIPs: the agent calls release() first)."""

    #: the instance metadata service this provider asks (`cloudvip doctor` checks the host
    #: firewall lets it through); None: none
    metadata_url: str | None = None

    async def doctor(self) -> list[Finding]:
        """`cloudvip doctor`'s checks of this provider, each finding with its fix: read-only (no
        write to the cloud, no address added). The default: start() works. A cloud overrides it
        with its own (identity, permissions, the VIP's resources) and calls doctor_start()."""
        return (await self.doctor_start())[0]

    async def doctor_discovery(self) -> list[Finding]:
        """Peer discovery (when configured) as a finding; fills `discovered`."""
        from .doctor.findings import fail, ok

        if self.peer_refresh is None:
            return []
        name = self.ctx.instance.name
        try:
            found = await within_deadline(self, "peer discovery", self.discover_peers())
        except ProviderError as exc:
            return [fail(name, "peer discovery", f"cannot list the peers: {exc}", "see the permission checks")]
        if not found and not self.ctx.instance.unicast_peers:
            return [fail(name, "peer discovery", "no other running instance carries the peer tag/label",
                         "tag the other node the same way (peer_tag / peer_label in the cloud block)")]
        return [ok(name, "peer discovery", f"found {', '.join(map(str, found)) or 'none'}")]

    async def doctor_start(self) -> tuple[list[Finding], bool]:
        """start() as a finding: whether it worked, and what to do when not."""
        from .doctor.findings import fail, ok

        name = self.ctx.instance.name
        try:
            await within_deadline(self, "start", self.start())
        except (ProviderError, LookupError, OSError) as exc:  # LookupError: an interface missing
            return [fail(name, f"{self.name} start", str(exc), "see the checks above and the cloud block")], False
        return [ok(name, f"{self.name} start", "ready: what a takeover needs was found")], True


async def within_deadline(provider: Provider, what: str, operation: Awaitable[T]) -> T:
    """Await one of the provider's operations under its operation_timeout: a call that hangs
    (an API that never answers, an action that never ends) becomes a retryable ProviderError."""
    try:
        async with asyncio.timeout(provider.operation_timeout) as deadline:
            return await operation
    except TimeoutError:
        if not deadline.expired():
            raise  # a timeout inside the provider: its own error
        raise ProviderError(f"{what}: no result within {provider.operation_timeout:g} s (operation_timeout)") \
            from None


def available_providers() -> dict[str, str]:
    """name -> 'module:Class' of every installed provider plugin."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_provider(name: str) -> type[Provider]:
    eps = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not eps:
        known = ", ".join(sorted(available_providers())) or "none"
        raise LookupError(f"unknown cloud provider {name!r} (installed: {known})")
    cls = eps[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"entry point {name!r} ({eps[0].value}) is not a cloudvip Provider")
    return cls


def provider_name(instance: VrrpInstance) -> str:
    return instance.cloud.provider if instance.cloud is not None else DEFAULT_PROVIDER


def check_providers(instances: tuple[VrrpInstance, ...]) -> list[Diagnostic]:
    """Let each instance's provider validate it (check-config and agent start)."""
    diags = Diagnostics()
    for inst in instances:
        name = provider_name(inst)
        try:
            cls = load_provider(name)
        except (LookupError, TypeError, ImportError) as exc:
            loc = inst.cloud.loc if inst.cloud is not None else inst.loc
            diags.error(loc, str(exc))
            continue
        cls.check_config(inst, diags)
    return diags.items


def load_checked(path: Path | str, config_id: str | None = None) -> Config:
    """Load a config and let every instance's provider check it; raises ConfigError.
    The returned config's diagnostics include the providers' warnings."""
    cfg = load(path, config_id=config_id)
    extra = check_providers(cfg.instances)
    if any(d.severity is Severity.ERROR for d in extra):
        raise ConfigError(sorted(list(cfg.diagnostics) + extra, key=lambda d: d.loc))
    return dataclasses.replace(cfg, diagnostics=cfg.diagnostics + tuple(extra))
