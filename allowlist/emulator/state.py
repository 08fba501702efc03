"""The emulator's in-memory Azure estate, and a timeline of every firewall change.

Resource IDs keep the case they were created with; lookups are case-insensitive, as in ARM.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Subscription:
    subscription_id: str
    display_name: str
    state: str = "Enabled"
    tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@dataclass
class Site:
    """A web app, function app or deployment slot, with the properties allowlist reads."""

    subscription_id: str
    resource_group: str
    name: str
    kind: str = "app"
    location: str = "West Europe"
    tags: dict[str, str] = field(default_factory=dict)
    server_farm_id: str = ""
    outbound_ip_addresses: str = ""
    possible_outbound_ip_addresses: str = ""
    outbound_ipv6_addresses: str | None = None
    possible_outbound_ipv6_addresses: str | None = None
    virtual_network_subnet_id: str | None = None
    vnet_route_all: bool = False
    hosting_environment_id: str | None = None
    sku: str = "PremiumV3"
    slot: str | None = None  # set for deployment slots
    slots: dict[str, Site] = field(default_factory=dict)

    @property
    def id(self) -> str:
        base = (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Web/sites/{self.name}"
        )
        return f"{base}/slots/{self.slot}" if self.slot else base


@dataclass(frozen=True)
class FirewallRule:
    name: str
    start: str
    end: str


@dataclass
class DbServer:
    subscription_id: str
    resource_group: str
    name: str
    location: str = "westeurope"
    rules: dict[str, FirewallRule] = field(default_factory=dict)  # keyed by lower-case name

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Sql/servers/{self.name}"
        )


@dataclass(frozen=True)
class FirewallEvent:
    """One change to one server's firewall: `before` is None for a create, `after` None for a delete."""

    at: float
    server_id: str
    name: str
    before: FirewallRule | None
    after: FirewallRule | None

    @property
    def op(self) -> str:
        if self.before is None:
            return "create"
        return "delete" if self.after is None else "update"


@dataclass
class State:
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)  # key: lower-case site id (no slots)
    servers: dict[str, DbServer] = field(default_factory=dict)  # key: lower-case server id
    resource_groups: set[tuple[str, str]] = field(default_factory=set)  # (subscription, group), lower-case
    sql_rule_limit: int = 128
    timeline: list[FirewallEvent] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def add_subscription(self, sub: Subscription) -> None:
        self.subscriptions[sub.subscription_id.lower()] = sub

    def add_site(self, site: Site) -> None:
        self.sites[site.id.lower()] = site
        self.resource_groups.add((site.subscription_id.lower(), site.resource_group.lower()))

    def add_sql_server(self, server: DbServer) -> None:
        self.servers[server.id.lower()] = server
        self.resource_groups.add((server.subscription_id.lower(), server.resource_group.lower()))

    def has_resource_group(self, subscription_id: str, resource_group: str) -> bool:
        return (subscription_id.lower(), resource_group.lower()) in self.resource_groups

    def subscription(self, subscription_id: str) -> Subscription | None:
        return self.subscriptions.get(subscription_id.lower())

    def record(self, server_id: str, name: str, before: FirewallRule | None, after: FirewallRule | None) -> None:
        self.timeline.append(FirewallEvent(time.monotonic(), server_id, name, before, after))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the firewall state, for tests and the `emulator` command."""
        with self.lock:
            return {
                server.id: sorted(
                    ({"name": r.name, "start": r.start, "end": r.end} for r in server.rules.values()),
                    key=lambda r: r["name"].lower(),
                )
                for server in self.servers.values()
            }

    def rules_over_time(self, server_id: str) -> list[list[FirewallRule]]:
        """The server's rules before the first change and after each one, oldest first.

        Lets a test prove that an address was never missing while it was needed.
        """
        with self.lock:
            server = self.servers[server_id.lower()]
            events = [e for e in self.timeline if e.server_id.lower() == server_id.lower()]
            rules = {r.name.lower(): r for r in server.rules.values()}
        for event in reversed(events):
            _put(rules, event.name, event.before)
        history = [list(rules.values())]
        for event in events:
            _put(rules, event.name, event.after)
            history.append(list(rules.values()))
        return history


def _put(rules: dict[str, FirewallRule], name: str, rule: FirewallRule | None) -> None:
    if rule is None:
        rules.pop(name.lower(), None)
    else:
        rules[name.lower()] = rule
