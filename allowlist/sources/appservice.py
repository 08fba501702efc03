"""App Service discovery: one paged site list per subscription, then one list per resource group
holding sites in scope, with includeSlots, for their deployment slots.

Reads run concurrently with a bound. A subscription or slot list that fails becomes a DiscoveryIssue
(the planner then withholds deletes for every target it feeds) instead of silently shrinking the set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from allowlist.addresses import parse_address_list
from allowlist.armerrors import describe, raise_if_fatal
from allowlist.azure import ArmClients, list_raw
from allowlist.config import AddressSource, Scope
from allowlist.model import AppEgress, Discovery, DiscoveryIssue


def discover(scope: Scope, clients: ArmClients) -> Discovery:
    settings = scope.settings
    issues: list[DiscoveryIssue] = []
    subscriptions = _subscriptions(scope, clients, issues)
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        listed = list(pool.map(lambda sub: _list_sites(clients, sub), subscriptions))
        sites: list[AppEgress] = []
        for sub, (found, issue) in zip(subscriptions, listed, strict=True):
            if issue is not None:
                issues.append(DiscoveryIssue(f"/subscriptions/{sub}", issue))
            sites.extend(to_egress(raw, settings.addresses) for raw in found)
        # Slots: one list per resource group holding sites in scope (includeSlots), not one per site.
        groups = sorted(
            {
                (site.subscription_id, site.resource_group)
                for site in sites
                if any(b.selector.slots and b.selector.matches_site(site) for b in scope.blocks)
            },
            key=lambda g: (g[0], g[1].lower()),
        )
        slot_lists = list(pool.map(lambda group: _list_group_slots(clients, *group), groups))
    apps = list(sites)
    for (sub, group), (found, issue) in zip(groups, slot_lists, strict=True):
        if issue is not None:
            issues.append(
                DiscoveryIssue(f"/subscriptions/{sub}/resourceGroups/{group}", f"slots could not be listed: {issue}")
            )
        apps.extend(to_egress(raw, settings.addresses) for raw in found if "/slots/" in str(raw.get("id", "")))
    apps.sort(key=lambda a: a.id.lower())
    issues.sort(key=lambda i: (i.scope.lower(), i.message))
    return Discovery(tuple(apps), tuple(issues))


def _subscriptions(scope: Scope, clients: ArmClients, issues: list[DiscoveryIssue]) -> list[str]:
    explicit = set(scope.subscriptions)
    if not scope.all_subscriptions:
        return sorted(explicit)
    found, issue = _collect(lambda: list_raw(clients.client("subscriptions"), "/subscriptions"))
    if issue is not None:
        issues.append(DiscoveryIssue("/subscriptions", f"subscriptions could not be listed: {issue}"))
    usable = {s["subscriptionId"].lower() for s in found if s.get("state") in ("Enabled", "Warning", "PastDue")}
    return sorted(explicit | usable)


def _list_sites(clients: ArmClients, subscription_id: str) -> tuple[list[dict[str, Any]], str | None]:
    path = f"/subscriptions/{subscription_id}/providers/Microsoft.Web/sites"
    return _collect(lambda: list_raw(clients.client("web", subscription_id), path))


def _list_group_slots(clients: ArmClients, subscription_id: str, group: str) -> tuple[list[dict[str, Any]], str | None]:
    path = f"/subscriptions/{subscription_id}/resourceGroups/{quote(group)}/providers/Microsoft.Web/sites"
    return _collect(lambda: list_raw(clients.client("web", subscription_id), path, includeSlots="true"))


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


def to_egress(raw: Mapping[str, Any], source: AddressSource) -> AppEgress:
    """One site or slot payload -> AppEgress, deciding whether its addresses can be trusted."""
    props: Mapping[str, Any] = raw.get("properties") or {}
    resource_id = str(raw.get("id", ""))
    parts = resource_id.split("/")
    key = "possibleOutboundIpAddresses" if source == "possible" else "outboundIpAddresses"
    v6_key = "possibleOutboundIpv6Addresses" if source == "possible" else "outboundIpv6Addresses"
    parsed = parse_address_list(props.get(key))
    ipv6 = parsed.ipv6 + parse_address_list(props.get(v6_key)).ipv6  # some payloads mix them
    warnings = [f"ignored {item}" for item in parsed.rejected]
    sku = str(props.get("sku") or "")
    kind = str(raw.get("kind") or "app")
    routing = props.get("outboundVnetRouting") or {}
    route_all = bool(routing.get("allTraffic") or props.get("vnetRouteAllEnabled"))
    reason = ""
    if route_all and props.get("virtualNetworkSubnetId"):
        reason = "routes all outbound traffic through its virtual network (NAT gateway or firewall egress)"
    elif sku.lower() == "flexconsumption":
        reason = "Flex Consumption apps do not leave from fixed addresses"
    elif not parsed.ipv4:
        reason = f"{key} is empty" + (
            " (Premium V4 apps do not report outbound addresses)" if "v4" in sku.lower() else ""
        )
    if sku.lower() == "dynamic":
        warnings.append("Consumption plan: the app may also connect from addresses outside this list")
    if ipv6:
        warnings.append(f"{len(ipv6)} IPv6 address(es) reported; SQL firewall rules are IPv4 only")
    return AppEgress(
        id=resource_id,
        name=str(raw.get("name", "")),
        subscription_id=parts[2].lower() if len(parts) > 2 else "",
        resource_group=parts[4] if len(parts) > 4 else str(props.get("resourceGroup", "")),
        kind=kind,
        location=str(raw.get("location", "")),
        tags=tuple(sorted((raw.get("tags") or {}).items())),
        ipv4=parsed.ipv4,
        ipv6=ipv6,
        source=key,
        pinned=not reason,
        reason=reason,
        warnings=tuple(warnings),
    )
