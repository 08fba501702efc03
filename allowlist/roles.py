"""Least-privilege role definitions, built from the back ends' descriptors (examples/roles/ holds them)."""

from __future__ import annotations

from typing import Any

from allowlist.targets.registry import BACKENDS

APP_READ = (
    "Microsoft.Resources/subscriptions/read",
    "Microsoft.Resources/subscriptions/resources/read",  # each subscription's site index
    "Microsoft.Web/sites/read",
    "Microsoft.Web/sites/slots/read",
    # Egress: where route-all and ASE apps really leave from.
    "Microsoft.Web/hostingEnvironments/read",
    "Microsoft.Network/virtualNetworks/subnets/read",
    "Microsoft.Network/natGateways/read",
    "Microsoft.Network/publicIPAddresses/read",
    "Microsoft.Network/publicIPPrefixes/read",
    "Microsoft.Network/routeTables/read",
    "Microsoft.Network/azureFirewalls/read",
)
LEASE = ("Microsoft.Resources/tags/read", "Microsoft.Resources/tags/write")  # the per-target lease of apply
EXAMPLE_SCOPE = "/subscriptions/11111111-1111-4111-8111-111111111111"


def _role(name: str, description: str, actions: tuple[str, ...], scope: str) -> dict[str, Any]:
    return {
        "Name": name,
        "IsCustom": True,
        "Description": description,
        "Actions": list(dict.fromkeys(actions)),
        "NotActions": [],
        "DataActions": [],
        "NotDataActions": [],
        "AssignableScopes": [scope],
    }


def role_definitions(scope: str = EXAMPLE_SCOPE) -> dict[str, dict[str, Any]]:
    """File name -> role definition, as `az role definition create --role-definition @FILE` takes it."""
    # An app's access restrictions live in its site config, whose write action covers all of that config:
    # a role of its own, so a database writer never gets it.
    sites = [b for b in BACKENDS.values() if b.arm_type == "Microsoft.Web/sites"]
    named = [b for b in BACKENDS.values() if b.capabilities.named_ranges and b not in sites]
    lists = [b for b in BACKENDS.values() if not b.capabilities.named_ranges and b not in sites]
    data_scope = f"{scope}/resourceGroups/rg-data"
    return {
        "allowlist-app-reader.json": _role(
            "allowlist App Reader",
            "Lets allowlist read App Service apps and slots, their outbound addresses, and the network that "
            "decides where their traffic really leaves (subnets, NAT gateways, public IPs and prefixes, route "
            "tables, Azure Firewalls, App Service Environments). Assign on the subscriptions or resource groups "
            "that hold the apps and their networks.",
            APP_READ,
            scope,
        ),
        "allowlist-firewall-writer.json": _role(
            "allowlist Database Firewall Writer",
            "Lets allowlist read, create and delete the firewall rules of each "
            + ", ".join(b.capabilities.label for b in named)
            + " it syncs, follow their long-running operations, and hold its lease tag while it writes; nothing "
            "else on the servers. Assign on each server it syncs (or their resource group).",
            tuple(a for b in named for a in (*b.read_actions, *b.write_actions)) + LEASE,
            data_scope,
        ),
        "allowlist-account-network-writer.json": _role(
            "allowlist Account Network Writer",
            "Lets allowlist read each "
            + " and ".join(b.capabilities.label for b in lists)
            + " it syncs, PATCH their IP lists and tags, and hold its lease tag while it writes. Azure has no narrower "
            "action for an account's IP rules than account write, so assign this only on the accounts "
            "allowlist syncs.",
            tuple(a for b in lists for a in (*b.read_actions, *b.write_actions)) + LEASE,
            data_scope,
        ),
        "allowlist-access-restriction-writer.json": _role(
            "allowlist Access Restriction Writer",
            "Lets allowlist read and update the access restrictions of each App Service app it syncs (its site "
            "config) and hold its lease tag while it writes. Azure has no narrower action for access restrictions "
            "than site config write, so assign this only on the apps allowlist syncs.",
            tuple(a for b in sites for a in (*b.read_actions, *b.write_actions)) + LEASE,
            f"{scope}/resourceGroups/rg-web",
        ),
    }
