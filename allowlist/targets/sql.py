"""Azure SQL logical servers: named IPv4 rules, synchronous writes, the service's own "allow Azure" rule."""

from __future__ import annotations

from allowlist.targets.base import Backend, Capabilities
from allowlist.targets.named import NamedRules

ARM_TYPE = "Microsoft.Sql/servers"

BACKEND = Backend(
    kind="sql",
    arm_type=ARM_TYPE,
    capabilities=Capabilities(
        label="Azure SQL server",
        named_ranges=True,
        ipv6=True,  # ipv6FirewallRules, a collection of their own
        default_rule_limit=128,
        long_running_writes=False,
        # 0.0.0.0-0.0.0.0 "allow Azure services": the service's own, never ours whatever the prefix.
        protected_names=("AllowAllWindowsAzureIps",),
        limit_error_codes=("TooManyFirewallRules", "FirewallRuleLimitExceeded"),
        service_endpoint="Microsoft.Sql",
    ),
    client=("azure.mgmt.sql", "SqlManagementClient"),
    api_version="2023-08-01",
    opener=NamedRules,
    read_actions=(f"{ARM_TYPE}/firewallRules/read", f"{ARM_TYPE}/ipv6FirewallRules/read"),
    write_actions=(
        f"{ARM_TYPE}/firewallRules/write",
        f"{ARM_TYPE}/firewallRules/delete",
        f"{ARM_TYPE}/ipv6FirewallRules/write",
        f"{ARM_TYPE}/ipv6FirewallRules/delete",
    ),
    iac={"terraform": "azurerm_mssql_firewall_rule", "terraform_local": "allowlist_sql_firewall_rules"},
)
