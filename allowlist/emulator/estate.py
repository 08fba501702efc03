"""Estate files (TOML or JSON) -> emulator State, with errors that name the file and the entry.

[emulator]                      # optional
page_size = 20                  # items per list page
sql_rule_limit = 128            # firewall rules per SQL server

[[subscriptions]]
id = "11111111-0000-0000-0000-000000000001"
name = "Production"             # display name; state = "Enabled" by default

[[sites]]                       # web apps and function apps
subscription = "11111111-0000-0000-0000-000000000001"
resource_group = "rg-shop"
name = "shop-api"
kind = "app,linux"              # "functionapp", "functionapp,linux", ...; default "app"
tags = { team = "shop" }
plan = "plan-shop"              # App Service plan name in the same group (or server_farm_id)
sku = "PremiumV3"               # "Dynamic", "FlexConsumption", "PremiumV4", ...
outbound_ip_addresses = "20.1.2.3,20.1.2.4"            # a string as ARM returns it, or a list
possible_outbound_ip_addresses = ["20.1.2.3", "20.1.2.4", "20.1.2.5"]
# optional: outbound_ipv6_addresses, possible_outbound_ipv6_addresses, virtual_network_subnet_id,
#           all_traffic = true (outboundVnetRouting.allTraffic), application_traffic = true (the portal's
#           "route all", outboundVnetRouting.applicationTraffic), site_config_vnet_route_all = true (older
#           apps' siteConfig.vnetRouteAllEnabled), public_network_access = "SecuredByPerimeter",
#           hosting_environment_id, location
slots = [{ name = "staging" }]  # a slot inherits its site's properties unless it sets its own

[[sql_servers]]                     # also [[postgresql_servers]], [[mysql_servers]], [[redis_caches]]
subscription = "11111111-0000-0000-0000-000000000001"
resource_group = "rg-data"
name = "sql-shop"
firewall_rules = [{ name = "AllowAllWindowsAzureIps", start = "0.0.0.0", end = "0.0.0.0" }]

[[cosmosdb_accounts]]               # also [[storage_accounts]] and [[key_vaults]] (default_action = "Allow")
subscription = "11111111-0000-0000-0000-000000000001"
resource_group = "rg-data"
name = "cosmos-shop"
location = "westeurope"
ip_rules = ["198.51.100.7", "203.0.113.0/24"]
tags = { owner = "data-team" }

[[subnets]]                         # what egress resolution reads; every id is a full resource ID
id = "/subscriptions/.../resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/apps"
address_prefix = "10.0.1.0/24"
nat_gateway = "/subscriptions/.../providers/Microsoft.Network/natGateways/nat-prod"     # optional
route_table = "/subscriptions/.../providers/Microsoft.Network/routeTables/rt-prod"      # optional
service_endpoints = ["Microsoft.Sql"]                                                  # optional

[[nat_gateways]]                    # id, public_ips = [ids], public_ip_prefixes = [ids]
[[public_ips]]                      # id, ip_address
[[public_ip_prefixes]]              # id, ip_prefix = "20.1.2.0/30"
[[route_tables]]                    # id, routes = [{ name, address_prefix, next_hop_type, next_hop_ip }]
[[azure_firewalls]]                 # id, private_ip, public_ips = [ids]
[[app_service_environments]]        # id, subnet, windows_outbound = [...], linux_outbound = [...]

[emulator] also takes postgresql_rule_limit, mysql_rule_limit, cosmosdb_rule_limit, storage_rule_limit.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from allowlist.emulator.providers import network
from allowlist.emulator.state import (
    COSMOSDB,
    KEYVAULT,
    MYSQL,
    POSTGRESQL,
    REDIS,
    SQL,
    STORAGE,
    DbServer,
    FirewallRule,
    IpListAccount,
    Site,
    State,
    Subscription,
)

SERVER_TABLES = {"sql_servers": SQL, "postgresql_servers": POSTGRESQL, "mysql_servers": MYSQL, "redis_caches": REDIS}
ACCOUNT_TABLES = {"cosmosdb_accounts": COSMOSDB, "storage_accounts": STORAGE, "key_vaults": KEYVAULT}
LIMIT_KEYS = {
    "sql_rule_limit": SQL,
    "postgresql_rule_limit": POSTGRESQL,
    "mysql_rule_limit": MYSQL,
    "cosmosdb_rule_limit": COSMOSDB,
    "storage_rule_limit": STORAGE,
    "redis_rule_limit": REDIS,
    "keyvault_rule_limit": KEYVAULT,
}


class EstateError(ValueError):
    """An estate file that is missing, unreadable or wrong; the message names file and entry."""


@dataclass(frozen=True)
class Estate:
    state: State
    page_size: int = 50


SITE_KEYS = {
    "subscription", "resource_group", "name", "kind", "location", "tags", "plan", "server_farm_id", "sku",
    "outbound_ip_addresses", "possible_outbound_ip_addresses", "outbound_ipv6_addresses",
    "possible_outbound_ipv6_addresses", "virtual_network_subnet_id", "all_traffic", "application_traffic",
    "site_config_vnet_route_all", "public_network_access", "hosting_environment_id", "slots",
    "ip_security_restrictions",
}  # fmt: skip
NETWORK_TABLES = {
    "subnets": {"id", "address_prefix", "nat_gateway", "route_table", "service_endpoints"},
    "nat_gateways": {"id", "public_ips", "public_ip_prefixes", "location"},
    "public_ips": {"id", "ip_address", "location"},
    "public_ip_prefixes": {"id", "ip_prefix", "location"},
    "route_tables": {"id", "routes", "location"},
    "azure_firewalls": {"id", "private_ip", "public_ips", "location"},
    "app_service_environments": {"id", "subnet", "windows_outbound", "linux_outbound", "location"},
}
SLOT_KEYS = SITE_KEYS - {"subscription", "resource_group", "slots", "plan"} | {"name", "plan"}
SERVER_KEYS = {"subscription", "resource_group", "name", "location", "firewall_rules"}
ACCOUNT_KEYS = {"subscription", "resource_group", "name", "location", "ip_rules", "tags", "default_action"}


def demo_estate_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "demo-estate.toml"


def load_estate(path: Path) -> Estate:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise EstateError(f"{path}: cannot read the estate file: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise EstateError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise EstateError(f"{path}: the estate must be a table/object at the top level")
    return build_estate(data, str(path))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> EstateError:
        return EstateError(f"{self.source}: {where}: {problem}")

    def table(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(where, f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
        return value

    def tables(self, data: dict[str, Any], key: str, where: str) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{where}{key}", "must be a list of tables")
        return value

    def text(self, entry: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = entry.get(key, default)
        if value is None:
            raise self.fail(where, f"'{key}' is required")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", "must be a non-empty string")
        return value.strip()

    def addresses(self, entry: dict[str, Any], key: str, where: str) -> str | None:
        """Address lists are kept as ARM returns them: one comma-separated string, untouched."""
        value = entry.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ",".join(value)
        raise self.fail(f"{where}.{key}", "must be a comma-separated string or a list of strings")

    def positive(self, entry: dict[str, Any], key: str, where: str, default: int) -> int:
        value = entry.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(f"{where}.{key}", "must be a whole number of at least 1")
        return value


def build_estate(data: dict[str, Any], source: str = "<estate>") -> Estate:
    r = _Reader(source)
    r.table(data, "top level", {"emulator", "subscriptions", "sites", *SERVER_TABLES, *ACCOUNT_TABLES, *NETWORK_TABLES})
    settings = r.table(data.get("emulator", {}), "emulator", {"page_size", *LIMIT_KEYS})
    state = State()
    for key, resource_type in LIMIT_KEYS.items():
        state.rule_limits[resource_type] = r.positive(settings, key, "emulator", state.rule_limits[resource_type])
    for i, raw in enumerate(r.tables(data, "subscriptions", "")):
        where = f"subscriptions[{i}]"
        entry = r.table(raw, where, {"id", "name", "state", "tenant_id"})
        sub_id = r.text(entry, "id", where)
        if state.subscription(sub_id) is not None:
            raise r.fail(where, f"subscription '{sub_id}' is listed twice")
        state.add_subscription(
            Subscription(
                sub_id,
                r.text(entry, "name", where, default=sub_id),
                r.text(entry, "state", where, default="Enabled"),
                r.text(entry, "tenant_id", where, default=Subscription.tenant_id),
            )
        )

    def owner(entry: dict[str, Any], where: str) -> tuple[str, str]:
        sub_id = r.text(entry, "subscription", where)
        if state.subscription(sub_id) is None:
            raise r.fail(f"{where}.subscription", f"'{sub_id}' is not in [[subscriptions]]")
        return sub_id, r.text(entry, "resource_group", where)

    for i, raw in enumerate(r.tables(data, "sites", "")):
        where = f"sites[{i}]"
        entry = r.table(raw, where, SITE_KEYS)
        sub_id, group = owner(entry, where)
        site = _site_properties(r, entry, where, Site(sub_id, group, r.text(entry, "name", where)))
        if site.id.lower() in state.sites:
            raise r.fail(where, f"site '{site.name}' is defined twice in resource group '{group}'")
        for j, raw_slot in enumerate(r.tables(entry, "slots", f"{where}.")):
            slot_where = f"{where}.slots[{j}]"
            slot_entry = r.table(raw_slot, slot_where, SLOT_KEYS)
            slot_name = r.text(slot_entry, "name", slot_where)
            slot = _site_properties(
                r, slot_entry, slot_where, replace(site, slot=slot_name, slots={}, tags=dict(site.tags))
            )
            site.slots[slot_name.lower()] = replace(slot, name=site.name)
        state.add_site(site)

    for table, resource_type in SERVER_TABLES.items():
        for i, raw in enumerate(r.tables(data, table, "")):
            where = f"{table}[{i}]"
            entry = r.table(raw, where, SERVER_KEYS)
            sub_id, group = owner(entry, where)
            name, location = r.text(entry, "name", where), r.text(entry, "location", where, "westeurope")
            server = DbServer(sub_id, group, name, location, type=resource_type)
            for j, raw_rule in enumerate(r.tables(entry, "firewall_rules", f"{where}.")):
                rule_where = f"{where}.firewall_rules[{j}]"
                rule = r.table(raw_rule, rule_where, {"name", "start", "end"})
                rule_name = r.text(rule, "name", rule_where)
                server.rules[rule_name.lower()] = FirewallRule(
                    rule_name, r.text(rule, "start", rule_where), r.text(rule, "end", rule_where, rule.get("start"))
                )
            state.add_server(server)
    for table, resource_type in ACCOUNT_TABLES.items():
        for i, raw in enumerate(r.tables(data, table, "")):
            where = f"{table}[{i}]"
            entry = r.table(raw, where, ACCOUNT_KEYS)
            sub_id, group = owner(entry, where)
            entries = entry.get("ip_rules", [])
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise r.fail(f"{where}.ip_rules", "must be a list of addresses or CIDRs")
            tags = entry.get("tags", {})
            if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
                raise r.fail(f"{where}.tags", "must be a table of strings")
            state.add_account(
                IpListAccount(
                    sub_id,
                    group,
                    r.text(entry, "name", where),
                    resource_type,
                    r.text(entry, "location", where, "westeurope"),
                    list(entries),
                    dict(tags),
                    r.text(entry, "default_action", where, "Deny"),
                )
            )
    _network(r, data, state)
    return Estate(state, r.positive(settings, "page_size", "emulator", 50))


def _network(r: _Reader, data: dict[str, Any], state: State) -> None:
    def strings(entry: dict[str, Any], key: str, where: str) -> list[str]:
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise r.fail(f"{where}.{key}", "must be a list of strings")
        return list(value)

    for table, keys in NETWORK_TABLES.items():
        for i, raw in enumerate(r.tables(data, table, "")):
            where = f"{table}[{i}]"
            e = r.table(raw, where, keys)
            rid, location = r.text(e, "id", where), r.text(e, "location", where, "westeurope")
            if rid.lower() in state.network:
                raise r.fail(where, f"'{rid}' is defined twice")
            try:
                bodies = _network_bodies(table, e, rid, location, r, where, strings)
            except ValueError as exc:
                raise r.fail(where, str(exc)) from exc
            for body in bodies:
                state.add_network(body)
            state.resource_groups.add((rid.split("/")[2].lower(), rid.split("/")[4].lower()))


def _network_bodies(table: str, e: dict[str, Any], rid: str, location: str, r: _Reader, where: str,
                    strings: Any) -> list[dict[str, Any]]:  # fmt: skip
    if table == "subnets":
        return [network.subnet_body(rid, r.text(e, "address_prefix", where, "10.0.0.0/24"), e.get("nat_gateway"),
                                    e.get("route_table"), strings(e, "service_endpoints", where))]  # fmt: skip
    if table == "nat_gateways":
        ips, prefixes = strings(e, "public_ips", where), strings(e, "public_ip_prefixes", where)
        return [network.nat_gateway_body(rid, ips, prefixes, location)]
    if table == "public_ips":
        return [network.public_ip_body(rid, r.text(e, "ip_address", where), location)]
    if table == "public_ip_prefixes":
        return [network.public_ip_prefix_body(rid, r.text(e, "ip_prefix", where), location)]
    if table == "route_tables":
        routes = r.tables(e, "routes", f"{where}.")
        checked = [r.table(x, f"{where}.routes[{j}]", {"name", "address_prefix", "next_hop_type", "next_hop_ip"})
                   for j, x in enumerate(routes)]  # fmt: skip
        return [network.route_table_body(rid, checked, location)]
    if table == "azure_firewalls":
        pips = strings(e, "public_ips", where)
        return [network.azure_firewall_body(rid, r.text(e, "private_ip", where), pips, location)]
    windows, linux = strings(e, "windows_outbound", where), strings(e, "linux_outbound", where)
    return network.ase_bodies(rid, r.text(e, "subnet", where), windows, linux, location)


def _site_properties(r: _Reader, entry: dict[str, Any], where: str, site: Site) -> Site:
    changes: dict[str, Any] = {}
    for key in (
        "kind",
        "location",
        "sku",
        "virtual_network_subnet_id",
        "hosting_environment_id",
        "server_farm_id",
    ):
        if key in entry:
            changes[key] = r.text(entry, key, where)
    for key in (
        "outbound_ip_addresses",
        "possible_outbound_ip_addresses",
        "outbound_ipv6_addresses",
        "possible_outbound_ipv6_addresses",
    ):
        if key in entry:
            changes[key] = r.addresses(entry, key, where)
    if "plan" in entry:
        changes["server_farm_id"] = (
            f"/subscriptions/{site.subscription_id}/resourceGroups/{site.resource_group}"
            f"/providers/Microsoft.Web/serverfarms/{r.text(entry, 'plan', where)}"
        )
    for key, field_name in (
        ("all_traffic", "all_traffic"),
        ("application_traffic", "application_traffic"),
        ("site_config_vnet_route_all", "site_config_route_all"),
    ):
        if key in entry:
            if not isinstance(entry[key], bool):
                raise r.fail(f"{where}.{key}", "must be true or false")
            changes[field_name] = entry[key]
    if "public_network_access" in entry:
        changes["public_network_access"] = r.text(entry, "public_network_access", where)
    if "ip_security_restrictions" in entry:  # [{ name, ip_address, action = "Allow", priority = 100 }]
        restrictions = []
        for j, raw in enumerate(r.tables(entry, "ip_security_restrictions", f"{where}.")):
            item_where = f"{where}.ip_security_restrictions[{j}]"
            item = r.table(raw, item_where, {"name", "ip_address", "action", "priority"})
            priority = item.get("priority", 100)
            if not isinstance(priority, int):
                raise r.fail(f"{item_where}.priority", "must be a whole number")
            restrictions.append(
                {
                    "name": r.text(item, "name", item_where),
                    "ipAddress": r.text(item, "ip_address", item_where),
                    "action": r.text(item, "action", item_where, "Allow"),
                    "priority": priority,
                    "tag": "Default",
                }
            )
        changes["ip_security_restrictions"] = restrictions
    if "tags" in entry:
        tags = entry["tags"]
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise r.fail(f"{where}.tags", "must be a table of strings")
        changes["tags"] = dict(tags)
    site = replace(site, **changes)
    if not site.server_farm_id:
        site = replace(
            site,
            server_farm_id=f"/subscriptions/{site.subscription_id}/resourceGroups/{site.resource_group}"
            f"/providers/Microsoft.Web/serverfarms/{site.name}-plan",
        )
    return site
