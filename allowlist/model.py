"""The plain values that flow between stages: addresses, ranges, apps, targets, rules."""

from __future__ import annotations

import functools
import ipaddress
import itertools
import socket
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Protocol

V4_SPAN = 2**32


@functools.lru_cache(maxsize=16384)  # apps on one stamp, and every copy of an app, hold the same tuple
def _sorted_v4(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """Canonical, unique and in numeric order. Usually they already are (parsed lists are): checked with
    inet_aton and a round trip, ~10x cheaper than parsing each with ipaddress, which is the fallback."""
    try:
        numbers = [int.from_bytes(socket.inet_aton(a), "big") for a in addresses]
    except OSError:
        numbers = None
    if numbers is not None and all(_text(n, 4) == a for n, a in zip(numbers, addresses, strict=True)):
        if all(a < b for a, b in itertools.pairwise(numbers)):
            return tuple(addresses)
        return tuple(_text(n, 4) for n in sorted(set(numbers)))
    return tuple(str(a) for a in sorted({ipaddress.IPv4Address(a) for a in addresses}))


@functools.lru_cache(maxsize=65536)  # a plan prints and saves each range end many times (every target it is on)
def _text(number: int, version: int) -> str:
    # inet_ntoa is ~10x faster than ipaddress for IPv4, and plans print hundreds of thousands of ends
    return socket.inet_ntoa(number.to_bytes(4, "big")) if version == 4 else str(ipaddress.IPv6Address(number))


@dataclass(frozen=True, order=True)
class IpRange:
    """An inclusive range of IPv4 (or, with version 6, IPv6) addresses, as firewall rules hold them."""

    start: int
    end: int
    version: int = 4

    def __post_init__(self) -> None:
        top = V4_SPAN if self.version == 4 else 2**128
        if self.version not in (4, 6) or not 0 <= self.start <= self.end < top:
            raise ValueError(f"not an IPv{self.version} range: {self.start}..{self.end}")

    @classmethod
    def parse(cls, start: str, end: str | None = None) -> IpRange:
        """Both ends of one IP version; a v4 address is never read as v6 or the other way round."""
        first = ipaddress.ip_address(start.strip())
        last = first if end is None else ipaddress.ip_address(end.strip())
        if first.version != last.version:
            raise ValueError(f"range {start} - {end} mixes IPv4 and IPv6")
        if int(first) > int(last):
            raise ValueError(f"range start {start} is after its end {end}")
        return cls(int(first), int(last), first.version)

    @property
    def first(self) -> str:
        return _text(self.start, self.version)

    @property
    def last(self) -> str:
        return _text(self.end, self.version)

    @property
    def span(self) -> tuple[int, int]:
        """On one number line for both versions (IPv6 after all of IPv4), for interval arithmetic."""
        offset = 0 if self.version == 4 else V4_SPAN
        return self.start + offset, self.end + offset

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def __contains__(self, address: int) -> bool:
        return self.start <= address <= self.end

    def __str__(self) -> str:
        return self.first if self.start == self.end else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class AppEgress:
    """One app (or slot) and the addresses it may connect from."""

    id: str
    name: str  # "site" or "site/slot"
    subscription_id: str
    resource_group: str
    kind: str
    location: str
    tags: tuple[tuple[str, str], ...] = ()
    ipv4: tuple[str, ...] = ()  # public IPv4 addresses, sorted numerically, no duplicates
    ipv6: tuple[str, ...] = ()
    source: str = "possibleOutboundIpAddresses"
    pinned: bool = True  # False: the addresses above are not where its traffic really leaves from
    reason: str = ""  # why it is not pinned
    warnings: tuple[str, ...] = ()
    # How its traffic leaves: platform, nat-gateway, azure-firewall, ase, declared or unknown; and the
    # chain of resources (or the property) that proved the addresses, first to last.
    mode: str = "platform"
    chain: tuple[str, ...] = ()
    service_endpoints: tuple[str, ...] = ()  # of its subnet, when its traffic goes through the VNet
    acknowledged: str = ""  # config accepted that it is not pinned: reported, but no longer a gap

    def __post_init__(self) -> None:
        # Whoever builds one, the order ARM listed things in must never reach a plan.
        object.__setattr__(self, "ipv4", _sorted_v4(tuple(self.ipv4)))
        object.__setattr__(self, "ipv6", tuple(str(a) for a in sorted({ipaddress.IPv6Address(a) for a in self.ipv6})))
        object.__setattr__(self, "tags", tuple(sorted(self.tags)))

    @classmethod
    def canonical(cls, values: dict[str, Any]) -> AppEgress:
        """An app from values already in the form __post_init__ makes (ipv4 canonical, numerically sorted and
        unique; ipv6 compressed, sorted and unique; tags sorted), without checking them. Discovery makes two
        per listed app from values it has just parsed: a fifth of its cost went to the checks."""
        app = object.__new__(cls)
        app.__dict__.update(_APP_DEFAULTS)
        app.__dict__.update(values)
        return app

    @property
    def site_name(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def slot(self) -> str | None:
        return self.name.split("/", 1)[1] if "/" in self.name else None


_APP_DEFAULTS = {f.name: f.default for f in fields(AppEgress) if f.default is not MISSING}


@dataclass(frozen=True, order=True)
class TargetRef:
    """A back end whose firewall allowlist manages, named by its ARM resource ID (parsed by the registry)."""

    subscription_id: str
    resource_group: str
    type: str
    name: str
    kind: str = field(default="sql", compare=False)

    @functools.cached_property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{self.type}/{self.name}"
        )

    @functools.cached_property
    def key(self) -> str:
        """Resource IDs compare without case, as ARM compares them (asked for per app and per rule: cached)."""
        return self.id.lower()


@dataclass(frozen=True, order=True)
class ExistingRule:
    name: str
    range: IpRange


@dataclass(frozen=True)
class DiscoveryIssue:
    scope: str  # the ARM scope that could not be read: a subscription or a resource group
    message: str


@dataclass(frozen=True)
class Discovery:
    apps: tuple[AppEgress, ...]
    issues: tuple[DiscoveryIssue, ...]


@dataclass(frozen=True)
class Egress:
    """How traffic leaving one subnet (or an App Service Environment) reaches the internet."""

    mode: str  # nat-gateway, azure-firewall, platform (no NAT gateway or default route), ase, unknown
    ipv4: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()  # resource IDs that proved the addresses, first to last
    reason: str = ""  # for unknown
    service_endpoints: tuple[str, ...] = ()


class Progress(Protocol):
    """How the core reports progress without printing: the CLI decides what a person or a log sees."""

    def step(self, phase: str, done: int, total: int) -> None: ...
