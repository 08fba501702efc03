"""Discovery through Azure Resource Graph: every site and slot of every subscription in scope in a few
paged queries (1,000 rows a page), and the network egress resolution needs in a few more, instead of
a site index per subscription and a site list per resource group.

Freshness: Resource Graph is an index that can trail ARM by seconds to minutes after a change (a tier
change, a new slot). Firewalls are always read live, and `apply FILE` re-derives a saved plan from the
source it is given (`--source`, ARM's lists by default).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from allowlist.armerrors import describe, raise_if_fatal
from allowlist.azure import ArmClients, json_answer, list_url
from allowlist.jsonshape import json_object
from allowlist.model import AppEgress, DiscoveryIssue, Progress
from allowlist.scope import Scope
from allowlist.sources.egress import Routing
from allowlist.sources.network import NetworkResolver

PATH = "/providers/Microsoft.ResourceGraph/resources"
PAGE = 1000
SUBSCRIPTIONS_PER_QUERY = 1000  # the service's limit
SITES = "resources | where type in~ ('microsoft.web/sites', 'microsoft.web/sites/slots') | project id, name, type, kind, location, tags, properties | order by id asc"  # noqa: E501
NETWORK = (
    "resources | where type in~ ('microsoft.network/virtualnetworks', 'microsoft.network/natgateways', "
    "'microsoft.network/publicipaddresses', 'microsoft.network/publicipprefixes', 'microsoft.network/routetables', "
    "'microsoft.network/azurefirewalls') | project id, name, type, properties | order by id asc"
)


def query(clients: ArmClients, kql: str, subscriptions: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Every row of a query, page by page, as raw JSON: sent and parsed by allowlist, as site lists are (the
    SDK's models walked every value of every row: at 10,000 apps, about 4 s of a plan's CPU)."""
    url = list_url(PATH, clients.api_version("resourcegraph"))
    batches = [
        list(subscriptions[i : i + SUBSCRIPTIONS_PER_QUERY])
        for i in range(0, len(subscriptions), SUBSCRIPTIONS_PER_QUERY)
    ]
    for batch in batches or [[]]:
        token: str | None = None
        while True:
            options = {"$top": PAGE, "resultFormat": "objectArray", **({"$skipToken": token} if token else {})}
            request = {"query": kql, "options": options, **({"subscriptions": batch} if batch else {})}
            page = json_answer(clients.send("POST", url, request))
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise ValueError(f"a Resource Graph answer holds no list of rows (data is {type(data).__name__})")
            yield from (row for row in data if isinstance(row, dict))
            token = page.get("$skipToken")
            if not isinstance(token, str) or not token:
                break


def discover_graph(scope: Scope, clients: ArmClients, subscriptions: Sequence[str], issues: list[DiscoveryIssue],
                   progress: Progress | None = None) -> list[tuple[AppEgress, Routing]]:  # fmt: skip
    """Sites and slots in scope with their platform addresses and routing, from one paged query."""
    from allowlist.sources.appservice import identify, with_addresses

    found: list[tuple[AppEgress, Routing]] = []
    unreadable = 0
    try:
        for row in query(clients, SITES, subscriptions):
            app = identify(row)
            if app is None:
                unreadable += 1
            elif scope.selects(app):
                found.append(with_addresses(app, row, scope.settings.addresses))
    except Exception as exc:  # any part not read is a gap: every target it feeds withholds deletes
        raise_if_fatal(exc)
        issues.append(DiscoveryIssue("/providers/Microsoft.ResourceGraph", f"the site query failed: {describe(exc)}"))
    if unreadable:
        issues.append(DiscoveryIssue("/providers/Microsoft.ResourceGraph", f"{unreadable} row(s) are not app payloads"))
    if progress is not None:
        progress.step("subscriptions", len(subscriptions), len(subscriptions))
    return found


def preload_network(resolver: NetworkResolver, clients: ArmClients, subscriptions: Sequence[str]) -> None:
    """Fill the resolver from one paged query; whatever is missing is still read one by one."""
    firewalls: dict[str, list[Mapping[str, Any]]] = {s.lower(): [] for s in subscriptions}
    bodies: list[Mapping[str, Any]] = []
    try:
        for row in query(clients, NETWORK, subscriptions):
            kind = str(row.get("type", "")).lower()
            bodies.append(row)
            if kind == "microsoft.network/virtualnetworks":
                subnets = json_object(row.get("properties")).get("subnets")
                bodies += [s for s in subnets or [] if isinstance(s, Mapping) and isinstance(s.get("id"), str)]
            elif kind == "microsoft.network/azurefirewalls":
                firewalls.setdefault(str(row.get("id", "")).split("/")[2].lower(), []).append(row)
    except Exception as exc:  # the resolver reads what it lacks itself
        raise_if_fatal(exc)
        return
    resolver.preload(bodies, firewalls)


def network_for(
    platform: list[tuple[AppEgress, Routing]], clients: ArmClients, subscriptions: Sequence[str]
) -> NetworkResolver:
    """A resolver filled from one query when any app's egress depends on the network."""
    resolver = NetworkResolver(clients)
    if any(r.needs_subnet or r.environment for _, r in platform):
        preload_network(resolver, clients, subscriptions)
    return resolver
