"""App Service discovery: one paged site index per subscription (ARM's resource list), then one site list
per resource group holding sites in scope, with includeSlots where their deployment slots are wanted.

Reads run concurrently with a bound. A subscription's index or a group's site list that fails becomes a
DiscoveryIssue (the planner then withholds deletes for every target it may feed) instead of silently
shrinking the set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from allowlist.addresses import ParsedAddresses, parse_address_list
from allowlist.armerrors import describe, raise_if_fatal
from allowlist.azure import ArmClients, list_url
from allowlist.jsonshape import json_object
from allowlist.model import AppEgress, Discovery, DiscoveryIssue, Progress
from allowlist.scope import AddressSource, Scope, Settings
from allowlist.sources.egress import Routing, decide
from allowlist.sources.network import NetworkResolver


@dataclass
class _Listing:
    """What one paged list yielded, converted page by page: no raw payload outlives its page."""

    apps: list[tuple[AppEgress, Routing]] = field(default_factory=list)  # in scope, with their routing
    # The resource groups holding sites in scope, by (subscription, lower-case name): ARM can spell one group's
    # name two ways in one list. Each with its name as first seen, and whether any of its sites wants slots.
    groups: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    unreadable: int = 0  # items that name no site
    error: str | None = None


def _index(scope: Scope, out: _Listing, items: Iterable[Any]) -> None:
    """One page of a subscription's site index (ID, kind, location, tags: what choosing needs) into the
    resource groups that hold sites in scope, and whether any of them wants its slots."""
    for raw in items:
        found = _site_id(raw)
        if found is None or found.group(4) is not None:
            out.unreadable += 1
            continue
        site = _app(raw, found)
        slots = scope.wants_slots_of(site)
        if slots or scope.selects(site):
            key = (site.subscription_id, site.resource_group.lower())
            name, wanted = out.groups.get(key, (site.resource_group, False))
            out.groups[key] = (name, wanted or slots)


def _convert(scope: Scope, out: _Listing, items: Iterable[Any]) -> None:
    """One page of a resource group's site list into `out`: the apps (and slots) in scope, with their
    addresses and routing."""
    for raw in items:
        found = _site_id(raw)
        if found is None:
            out.unreadable += 1
            continue
        app = _app(raw, found)
        if scope.selects(app):
            out.apps.append(with_addresses(app, raw, scope.settings.addresses))


Convert = Callable[[Scope, _Listing, Iterable[Any]], None]


def _read(clients: ArmClients, scope: Scope, urls: list[str], api: str, convert: Convert,
          tick: Callable[[int], None]) -> list[_Listing]:  # fmt: skip
    """Paged lists, `concurrency` at once, each page converted as it arrives (in the event loop: no thread
    waits on each page); any part not read is a gap, recorded as the list's error."""
    found = [_Listing() for _ in urls]
    sink = lambda i, items: convert(scope, found[i], items)  # noqa: E731
    errors = clients.read_lists(urls, api, scope.settings.concurrency, sink, tick)
    for listing, error in zip(found, errors, strict=True):
        if error is not None:
            raise_if_fatal(error)
            listing.error = describe(error)
    return found


SITES_ONLY = "resourceType eq 'Microsoft.Web/sites'"


def discover(scope: Scope, clients: ArmClients, progress: Progress | None = None) -> Discovery:
    """Every app in scope of some [[sync]] block. Apps out of scope are read only as far as choosing needs."""
    settings = scope.settings
    issues: list[DiscoveryIssue] = []
    subscriptions = subscriptions_in(scope, clients, issues)
    tick = progress.step if progress is not None else (lambda phase, done, total: None)
    if settings.source == "resource-graph":
        from allowlist.sources.resourcegraph import discover_graph, network_for

        with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
            graph = discover_graph(scope, clients, subscriptions, issues, progress)
            resolver = network_for(graph, clients, subscriptions)
            apps = resolve_egress(graph, scope, clients, pool, resolver)
        return _discovery(apps, issues)

    # Each site's payload is read once. First one paged index per subscription (ARM's resource list, sites
    # only: ID, kind, location and tags, a few hundred bytes each), which names the resource groups holding
    # sites in scope; then one site list per such group, with includeSlots where slots are wanted (ARM has
    # no subscription-wide includeSlots). Never one call per app.
    with clients.event_loop():  # held across both rounds of lists and the network lookups after them
        api = clients.api_version("resources")
        urls = [list_url(f"/subscriptions/{sub}/resources", api, **{"$filter": SITES_ONLY}) for sub in subscriptions]
        indexes = _read(clients, scope, urls, api, _index, lambda _: tick("subscriptions", 1, len(subscriptions)))
        groups = sorted((sub, name, slots) for found in indexes for (sub, _), (name, slots) in found.groups.items())
        web = clients.api_version("web")
        urls = [
            list_url(f"/subscriptions/{sub}/resourceGroups/{quote(name)}/providers/Microsoft.Web/sites", web,
                     **({"includeSlots": "true"} if slots else {}))
            for sub, name, slots in groups
        ]  # fmt: skip
        each_group = lambda _: tick("resource groups", 1, len(groups))  # noqa: E731
        site_lists = _read(clients, scope, urls, web, _convert, each_group)
        platform: list[tuple[AppEgress, Routing]] = []
        for sub, found in zip(subscriptions, indexes, strict=True):  # assembled in a fixed order
            _note(issues, f"/subscriptions/{sub}", found, "")
        for (sub, name, _), found in zip(groups, site_lists, strict=True):
            _note(issues, f"/subscriptions/{sub}/resourceGroups/{name}", found, "sites could not be listed: ")
            platform += found.apps
        with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
            apps = resolve_egress(platform, scope, clients, pool)
    return _discovery(apps, issues)


def _discovery(apps: list[AppEgress], issues: list[DiscoveryIssue]) -> Discovery:
    """In a fixed order, each app once (a list that gave one twice, as ARM's paging can, counts it once)."""
    unique = {a.id.lower(): a for a in apps}
    issues.sort(key=lambda i: (i.scope.lower(), i.message))
    return Discovery(tuple(unique[k] for k in sorted(unique)), tuple(issues))


def _note(issues: list[DiscoveryIssue], where: str, found: _Listing, lead: str) -> None:
    if found.error is not None:
        issues.append(DiscoveryIssue(where, lead + found.error))
    if found.unreadable:
        issues.append(DiscoveryIssue(where, f"{found.unreadable} listed site(s) are not readable app payloads"))


def resolve_egress(
    platform: list[tuple[AppEgress, Routing]],
    scope: Scope,
    clients: ArmClients,
    pool: ThreadPoolExecutor,
    resolver: NetworkResolver | None = None,
) -> list[AppEgress]:
    """Look up each distinct subnet and environment once, concurrently; then decide every app's egress."""
    declared = {s for d in scope.egress for s in d.subnets}
    # One lookup per distinct subnet (IDs compare without case), in the case ARM first gave it.
    subnets = {r.subnet.lower(): r.subnet for _, r in platform if r.needs_subnet and r.subnet}
    for key in declared:
        subnets.pop(key, None)
    environments = sorted({(r.environment, "linux" in a.kind.lower()) for a, r in platform if r.environment})
    resolver = resolver or NetworkResolver(clients)
    web_api = clients.api_version("web") if environments else ""
    by_subnet = dict(zip(subnets, pool.map(resolver.subnet, subnets.values()), strict=True))
    by_environment = dict(
        zip(environments, pool.map(lambda e: resolver.environment(e[0], e[1], web_api), environments), strict=True)
    )
    return [
        decide(
            app,
            routing,
            scope.settings,
            by_subnet,
            by_environment.get((routing.environment, "linux" in app.kind.lower())) if routing.environment else None,
            scope.egress,
            scope.acknowledged,
        )
        for app, routing in platform
    ]


def subscriptions_in(scope: Scope, clients: ArmClients, issues: list[DiscoveryIssue]) -> list[str]:
    explicit = set(scope.subscriptions)
    if not scope.all_subscriptions:
        return sorted(explicit)
    found, issue = _collect(lambda: clients.list_raw("/subscriptions", clients.api_version("subscriptions")))
    if issue is not None:
        issues.append(DiscoveryIssue("/subscriptions", f"subscriptions could not be listed: {issue}"))
    usable = {
        s["subscriptionId"].lower()
        for s in found
        if isinstance(s, Mapping)
        and isinstance(s.get("subscriptionId"), str)
        and s.get("state") in ("Enabled", "Warning", "PastDue")
    }
    return sorted(explicit | usable)


def _collect(pager: Callable[[], Iterable[dict[str, Any]]]) -> tuple[list[dict[str, Any]], str | None]:
    """Read a whole paged list; on failure return what there was and why (auth failures stop the run)."""
    items: list[dict[str, Any]] = []
    try:
        for item in pager():
            items.append(item)
    except Exception as exc:  # an SDK or transport error: any part we cannot read is a gap
        raise_if_fatal(exc)
        return items, describe(exc)
    return items, None


_SITE_ID = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Web/sites/([^/]+)"
                      r"(?:/slots/([^/]+))?$", re.IGNORECASE)  # fmt: skip


def _shape(value: Any) -> str:
    """How JSON calls a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def identify(raw: Any) -> AppEgress | None:
    """What selection needs (ID, name, kind, tags), read defensively; None when the ID is not a site's."""
    found = _site_id(raw)
    return None if found is None else _app(raw, found)


def _site_id(raw: Any) -> re.Match[str] | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
        return None
    return _SITE_ID.match(raw["id"])


def _app(raw: Mapping[str, Any], m: re.Match[str]) -> AppEgress:
    sub, group, site, slot = m.groups()
    tags = raw.get("tags")
    kind, location = raw.get("kind"), raw.get("location")
    return AppEgress.canonical(
        {
            "id": raw["id"],
            "name": f"{site}/{slot}" if slot else site,
            "subscription_id": sub.lower(),
            "resource_group": group,
            "kind": kind if isinstance(kind, str) and kind else "app",
            "location": location if isinstance(location, str) else "",
            "tags": tuple(sorted((k, v) for k, v in tags.items() if isinstance(k, str) and isinstance(v, str)))
            if isinstance(tags, Mapping)
            else (),
        }
    )


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _addresses(props: Mapping[str, Any], key: str) -> tuple[ParsedAddresses, str]:
    """The property parsed, or why it cannot be (a value of another JSON type than a string)."""
    value = props.get(key)
    if value is None or isinstance(value, str):
        return parse_address_list(value), ""
    return parse_address_list(None), f"{key} is {_shape(value)}, not a list of addresses"


def routing_of(props: Mapping[str, Any]) -> Routing:
    """Read from the site list alone: no per-app call. Plain tests in the order of precedence: this runs
    once per app."""
    routing = json_object(props.get("outboundVnetRouting"))
    because = None
    if routing.get("allTraffic") is True:
        because = "outboundVnetRouting.allTraffic"
    elif routing.get("applicationTraffic") is True:
        because = "outboundVnetRouting.applicationTraffic"
    elif props.get("vnetRouteAllEnabled") is True:
        because = "vnetRouteAllEnabled"
    elif json_object(props.get("siteConfig")).get("vnetRouteAllEnabled") is True:
        because = "siteConfig.vnetRouteAllEnabled"
    elif props.get("publicNetworkAccess") == "SecuredByPerimeter":
        because = "publicNetworkAccess SecuredByPerimeter"
    return Routing(
        subnet=_string(props.get("virtualNetworkSubnetId")) or None,
        route_all=because,
        environment=_string(json_object(props.get("hostingEnvironmentProfile")).get("id")) or None,
        sku=_string(props.get("sku")),
    )


def with_addresses(app: AppEgress, raw: Mapping[str, Any], source: AddressSource) -> tuple[AppEgress, Routing]:
    """The app with the addresses the platform lists for it, and how its traffic is routed."""
    props = json_object(raw.get("properties"))
    key = "possibleOutboundIpAddresses" if source == "possible" else "outboundIpAddresses"
    v6_key = "possibleOutboundIpv6Addresses" if source == "possible" else "outboundIpv6Addresses"
    parsed, bad = _addresses(props, key)
    parsed_v6, _ = _addresses(props, v6_key)
    ipv6 = parsed.ipv6 + parsed_v6.ipv6  # some payloads mix them
    warnings = [f"ignored {item}: dropped" for item in parsed.rejected]
    reason = bad or ("" if parsed.ipv4 else f"{key} is empty")
    if ipv6:
        warnings.append(f"{len(ipv6)} IPv6 address(es) reported; IPv4 firewall rules cannot hold them")
    values = {  # every field of app, as replace() would keep
        **vars(app),
        "ipv4": parsed.ipv4,
        "ipv6": ipv6,
        "source": key,
        "pinned": not reason,
        "reason": reason,
        "warnings": tuple(warnings),
        "chain": (f"{app.id}#properties.{key}",),
    }
    # Parsed lists are canonical; IPv6 from both properties is put in order by the checked constructor.
    platform = AppEgress(**values) if parsed.ipv6 and parsed_v6.ipv6 else AppEgress.canonical(values)
    return platform, routing_of(props)


def to_egress(raw: Mapping[str, Any], source: AddressSource) -> AppEgress:
    """One site or slot payload -> AppEgress (for payloads known to be sites)."""
    app = identify(raw)
    if app is None:
        raise ValueError(f"not a site payload: {raw.get('id')!r}")
    platform, routing = with_addresses(app, raw, source)
    return decide(platform, routing, Settings())
