"""MySQL flexible servers: named IPv4 rules whose writes are long-running operations (first answer 202)."""

from __future__ import annotations

from allowlist.targets.base import Backend, Capabilities
from allowlist.targets.named import NamedRules

NAMESPACE = "Microsoft.DBforMySQL"
ARM_TYPE = f"{NAMESPACE}/flexibleServers"

BACKEND = Backend(
    kind="mysql",
    arm_type=ARM_TYPE,
    capabilities=Capabilities(
        label="MySQL flexible server",
        named_ranges=True,
        ipv6=False,
        default_rule_limit=128,
        long_running_writes=True,
        name_pattern=r"^[-\w]{1,128}$",  # letters, digits, '-' and '_': dots are written as '_'
        name_dots_as="_",
        limit_error_codes=("FirewallRuleLimitExceeded",),
    ),
    client=("azure.mgmt.mysqlflexibleservers", "MySQLManagementClient"),
    api_version="2023-12-30",
    opener=NamedRules,
    read_actions=(f"{ARM_TYPE}/firewallRules/read",),
    write_actions=(
        f"{ARM_TYPE}/firewallRules/write",
        f"{ARM_TYPE}/firewallRules/delete",
        f"{NAMESPACE}/locations/azureAsyncOperation/read",
        f"{NAMESPACE}/locations/operationResults/read",
    ),
    iac={
        "terraform": "azurerm_mysql_flexible_server_firewall_rule",
        "terraform_local": "allowlist_mysql_firewall_rules",
    },
)
