"""Every supported back end: its capabilities, and the module that speaks to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from allowlist.azure import ArmClients
from allowlist.model import TargetRef
from allowlist.targets.base import Capabilities, Target

# Rules the services create themselves for "allow Azure services": never ours, whatever the prefix.
ALLOW_AZURE_SQL = ("AllowAllWindowsAzureIps",)

# PostgreSQL and MySQL flexible servers: the same rule model, names of letters, digits, '-' and '_'.
_FLEXIBLE = Capabilities(
    label="PostgreSQL flexible server",
    named_ranges=True,
    ipv6=False,
    default_rule_limit=128,
    long_running_writes=True,
    name_pattern=r"^[-\w]{1,128}$",
    name_dots_as="_",
)

CAPABILITIES: dict[str, Capabilities] = {
    "sql": Capabilities(
        label="Azure SQL server",
        named_ranges=True,
        ipv6=False,
        default_rule_limit=128,
        long_running_writes=False,
        protected_names=ALLOW_AZURE_SQL,
    ),
    "postgresql": _FLEXIBLE,
    "mysql": replace(_FLEXIBLE, label="MySQL flexible server"),
    "cosmosdb": Capabilities(
        label="Cosmos DB account",
        named_ranges=False,
        ipv6=False,
        default_rule_limit=1000,
        long_running_writes=True,
        empty_list_means_open=True,
    ),
    "storage": Capabilities(
        label="Storage account",
        named_ranges=False,
        ipv6=False,
        default_rule_limit=400,
        long_running_writes=False,
        single_address_max_prefix=30,
        same_region_bypasses_rules=True,
    ),
}


def open_target(ref: TargetRef, clients: ArmClients) -> Target:
    from allowlist.targets.accounts import CosmosTarget, StorageTarget
    from allowlist.targets.servers import FlexibleTarget, SqlTarget

    openers: dict[str, Callable[[TargetRef, ArmClients, Capabilities], Target]] = {
        "sql": SqlTarget,
        "postgresql": FlexibleTarget,
        "mysql": FlexibleTarget,
        "cosmosdb": CosmosTarget,
        "storage": StorageTarget,
    }
    return openers[ref.kind](ref, clients, CAPABILITIES[ref.kind])
