"""The emulator's in-memory Azure estate, and a timeline of every firewall change.

Resource IDs keep the case they were created with; lookups are case-insensitive, as in ARM.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
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
    all_traffic: bool = False  # outboundVnetRouting.allTraffic
    application_traffic: bool = False  # outboundVnetRouting.applicationTraffic: the portal's "route all"
    site_config_route_all: bool = False  # siteConfig.vnetRouteAllEnabled, as older apps have it
    public_network_access: str = "Enabled"  # "SecuredByPerimeter" forces all traffic into the VNet
    hosting_environment_id: str | None = None
    sku: str = "PremiumV3"
    slot: str | None = None  # set for deployment slots
    slots: dict[str, Site] = field(default_factory=dict)
    # Tests of odd payloads: JSON set over the answer, by dotted path ("properties.sku": 7).
    overrides: dict[str, Any] = field(default_factory=dict)
    # config/web ipSecurityRestrictions (access restrictions), and a version for the ETag of config/web
    ip_security_restrictions: list[dict[str, Any]] = field(default_factory=list)
    config_version: int = 1

    def restriction_rules(self) -> dict[str, FirewallRule]:
        """Allow restrictions as rules named by their names, so the firewall timeline covers them too."""
        found = {}
        for entry in self.ip_security_restrictions:
            text = str(entry.get("ipAddress", ""))
            try:
                import ipaddress

                nets = [ipaddress.ip_network(t.strip(), strict=False) for t in text.split(",") if t.strip()]
            except ValueError:
                continue
            if nets and entry.get("action", "Allow") == "Allow":
                name = str(entry.get("name", ""))
                found[name.lower()] = FirewallRule(name, str(min(n[0] for n in nets)), str(max(n[-1] for n in nets)))
        return found

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


def resource_id(subscription_id: str, group: str, resource_type: str, name: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{group}/providers/{resource_type}/{name}"


SQL = "Microsoft.Sql/servers"
POSTGRESQL = "Microsoft.DBforPostgreSQL/flexibleServers"
MYSQL = "Microsoft.DBforMySQL/flexibleServers"
COSMOSDB = "Microsoft.DocumentDB/databaseAccounts"
STORAGE = "Microsoft.Storage/storageAccounts"
REDIS = "Microsoft.Cache/redis"
KEYVAULT = "Microsoft.KeyVault/vaults"


@dataclass
class DbServer:
    """A server with named start/end firewall rules: Azure SQL, PostgreSQL or MySQL flexible."""

    subscription_id: str
    resource_group: str
    name: str
    location: str = "westeurope"
    rules: dict[str, FirewallRule] = field(default_factory=dict)  # keyed by lower-case name
    type: str = SQL
    rules6: dict[str, FirewallRule] = field(default_factory=dict)  # SQL's ipv6FirewallRules, by lower-case name
    tags: dict[str, str] = field(default_factory=dict)
    rule_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # by lower-case rule name

    @property
    def id(self) -> str:
        return resource_id(self.subscription_id, self.resource_group, self.type, self.name)


@dataclass
class IpListAccount:
    """A Cosmos DB or Storage account: one unnamed list of addresses and CIDRs, replaced whole by PATCH."""

    subscription_id: str
    resource_group: str
    name: str
    type: str
    location: str = "westeurope"
    ip_rules: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    default_action: str = "Deny"  # Storage's networkAcls.defaultAction
    version: int = 1  # bumped by every change; the ETag a read returns and If-Match compares

    @property
    def id(self) -> str:
        return resource_id(self.subscription_id, self.resource_group, self.type, self.name)

    @property
    def etag(self) -> str:
        return f'"{self.version:08x}-0000-0000-0000-000000000000"'

    def as_rules(self) -> dict[str, FirewallRule]:
        """Entries as rules named by themselves, so one timeline serves both kinds of firewall."""
        return {entry.lower(): entry_rule(entry) for entry in self.ip_rules}


def entry_rule(entry: str) -> FirewallRule:
    import ipaddress

    network = ipaddress.ip_network(entry, strict=False)
    return FirewallRule(entry, str(network[0]), str(network[-1]))


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
    accounts: dict[str, IpListAccount] = field(default_factory=dict)  # key: lower-case account id
    rule_limits: dict[str, int] = field(
        default_factory=lambda: {
            SQL: 128,
            POSTGRESQL: 128,
            MYSQL: 128,
            COSMOSDB: 1000,
            STORAGE: 400,
            REDIS: 128,
            KEYVAULT: 1000,
        }
    )
    resource_groups: set[tuple[str, str]] = field(default_factory=set)  # (subscription, group), lower-case
    # Read-only resources served as they are: subnets, NAT gateways, public IPs and prefixes, route
    # tables, Azure Firewalls, App Service Environments (and their networking configuration), by ID.
    network: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeline: list[FirewallEvent] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _site_index: dict[tuple[str, str | None], list[Site]] = field(default_factory=dict, repr=False)

    def add_subscription(self, sub: Subscription) -> None:
        self.subscriptions[sub.subscription_id.lower()] = sub

    def add_site(self, site: Site) -> None:
        self.sites[site.id.lower()] = site
        self.resource_groups.add((site.subscription_id.lower(), site.resource_group.lower()))
        self._site_index.clear()

    def sites_in(self, subscription_id: str, resource_group: str | None = None) -> list[Site]:
        """A subscription's or a resource group's sites (lower-case names), from an index made once: a
        scan of every site per list request made the emulator's CPU grow with groups x sites."""
        if not self._site_index:
            for site in self.sites.values():
                sub, group = site.subscription_id.lower(), site.resource_group.lower()
                self._site_index.setdefault((sub, None), []).append(site)
                self._site_index.setdefault((sub, group), []).append(site)
        return list(self._site_index.get((subscription_id, resource_group), ()))

    def add_server(self, server: DbServer) -> None:
        self.servers[server.id.lower()] = server
        self.resource_groups.add((server.subscription_id.lower(), server.resource_group.lower()))

    def add_network(self, body: dict[str, Any]) -> None:
        self.network[str(body["id"]).lower()] = body

    def add_account(self, account: IpListAccount) -> None:
        self.accounts[account.id.lower()] = account
        self.resource_groups.add((account.subscription_id.lower(), account.resource_group.lower()))

    def rule_limit(self, resource_type: str) -> int:
        return self.rule_limits[resource_type]

    def has_resource_group(self, subscription_id: str, resource_group: str) -> bool:
        return (subscription_id.lower(), resource_group.lower()) in self.resource_groups

    def tagged(self, resource_id: str) -> DbServer | IpListAccount | Site | None:
        """The server, account, site or slot a Tags API path names."""
        key = resource_id.lower()
        return self.servers.get(key) or self.accounts.get(key) or self.site_or_slot(key)

    def site_or_slot(self, resource_id: str) -> Site | None:
        site_id, _, slot = resource_id.lower().partition("/slots/")
        site = self.sites.get(site_id)
        return site.slots.get(slot) if site is not None and slot else site

    def subscription(self, subscription_id: str) -> Subscription | None:
        return self.subscriptions.get(subscription_id.lower())

    def record(self, server_id: str, name: str, before: FirewallRule | None, after: FirewallRule | None) -> None:
        self.timeline.append(FirewallEvent(time.monotonic(), server_id, name, before, after))

    def store_rule(
        self, owner_id: str, rules: dict[str, FirewallRule], name: str, start: str, end: str
    ) -> FirewallRule | None:
        """Create or replace a named rule (it keeps the case it was created with), on the timeline; the
        rule it replaced, if any. Callers hold the lock."""
        before = rules.get(name.lower())
        after = FirewallRule(before.name if before else name, start, end)
        rules[name.lower()] = after
        if before != after:
            self.record(owner_id, after.name, before, after)
        return before

    def remove_rule(self, owner_id: str, rules: dict[str, FirewallRule], name: str) -> FirewallRule | None:
        """Delete a named rule, on the timeline; the rule deleted, or None when there was none."""
        before = rules.pop(name.lower(), None)
        if before is not None:
            self.record(owner_id, before.name, before, None)
        return before

    def record_changes(
        self, owner_id: str, before: Mapping[str, FirewallRule], after: Mapping[str, FirewallRule]
    ) -> None:
        """Every rule that came, went or changed between two views of one firewall, keyed alike."""
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                self.record(owner_id, (after.get(key) or before[key]).name, before.get(key), after.get(key))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the firewall state, for tests and the `emulator` command."""
        with self.lock:
            return {
                resource_id: sorted(
                    ({"name": r.name, "start": r.start, "end": r.end} for r in rules.values()),
                    key=lambda r: r["name"].lower(),
                )
                for resource_id, rules in self._all_rules().items()
            }

    def _all_rules(self) -> dict[str, dict[str, FirewallRule]]:
        found = {server.id: {**server.rules, **server.rules6} for server in self.servers.values()}
        found.update((app.id, app.restriction_rules()) for s in self.sites.values() for app in (s, *s.slots.values()))
        found.update((account.id, account.as_rules()) for account in self.accounts.values())
        return found

    def rules_over_time(self, server_id: str) -> list[list[FirewallRule]]:
        """The server's rules before the first change and after each one, oldest first.

        Lets a test prove that an address was never missing while it was needed.
        """
        with self.lock:
            current = {k.lower(): v for k, v in self._all_rules().items()}[server_id.lower()]
            events = [e for e in self.timeline if e.server_id.lower() == server_id.lower()]
            rules = {r.name.lower(): r for r in current.values()}
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


def overlay(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`body` with each dotted path set to its value (a test's odd payload); objects on the way are made."""
    for path, value in overrides.items():
        node: Any = body
        *parents, last = path.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[last] = value
    return body
