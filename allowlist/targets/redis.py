"""Azure Cache for Redis: named start/end IPv4 rules (`firewallRules`, `startIP` / `endIP`) whose names
take letters, digits and underscores only, so both the dots and the dashes of a name become `_`:
`allowlist_20_1_2_3_20_1_2_6`. Read and written through the SDK client's pipeline as raw JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from allowlist.armerrors import describe
from allowlist.model import ExistingRule, IpRange, TargetRef
from allowlist.targets.base import (
    Backend,
    Capabilities,
    Firewall,
    RuleWrite,
    TargetWriteError,
    rest_writes,
    with_opaque,
)

if TYPE_CHECKING:
    from allowlist.azure import ArmClients

ARM_TYPE = "Microsoft.Cache/redis"
API_VERSION = "2024-11-01"


class RedisRules:
    def __init__(self, ref: TargetRef, clients: ArmClients, capabilities: Capabilities) -> None:
        self.ref = ref
        self.capabilities = capabilities
        self._clients = clients

    def read(self, prefix: str) -> Firewall:
        del prefix  # named rules carry their ownership in their names
        rules, opaque = [], []
        # Raw ARM JSON: azure-mgmt-redis has no send_request and its models are not needed for two fields.
        for rule in self._clients.list_raw(f"{self.ref.id}/firewallRules", API_VERSION):
            found_props = rule.get("properties")
            props: dict[str, Any] = found_props if isinstance(found_props, dict) else {}
            name = str(rule.get("name", "")).rsplit("/", 1)[-1]  # Get answers "cache/rule", List "rule"
            try:
                found = IpRange.parse(str(props.get("startIP")), str(props.get("endIP")))
            except ValueError:
                found = None
            if found is None or found.version != 4:
                opaque.append(name)
            else:
                rules.append(ExistingRule(name, found))
        return with_opaque(rules, opaque, "rule '{}' does not hold a readable IPv4 range")

    def write_all(self, writes: Sequence[RuleWrite], width: int, each: Callable[[], None]) -> list[Exception | None]:
        def call(write: RuleWrite) -> tuple[str, str, Any]:
            url = f"{self.ref.id}/firewallRules/{write.name}?api-version={API_VERSION}"
            if write.action == "delete":
                return "DELETE", url, None
            return "PUT", url, {"properties": {"startIP": write.range.first, "endIP": write.range.last}}

        return rest_writes(
            self._clients, [call(w) for w in writes], width, each, lambda error: TargetWriteError(describe(error))
        )


BACKEND = Backend(
    kind="redis",
    arm_type=ARM_TYPE,
    capabilities=Capabilities(
        label="Azure Cache for Redis",
        named_ranges=True,
        ipv6=False,
        default_rule_limit=128,  # not published: set rule_limit to yours
        long_running_writes=False,
        name_pattern=r"^[A-Za-z0-9_]{1,128}$",
        name_dots_as="_",
        name_dash_as="_",
    ),
    client=("azure.mgmt.resource.subscriptions", "SubscriptionClient"),  # raw requests, see RedisRules._client
    api_version=API_VERSION,
    opener=RedisRules,
    read_actions=(f"{ARM_TYPE}/firewallRules/read",),
    write_actions=(f"{ARM_TYPE}/firewallRules/write", f"{ARM_TYPE}/firewallRules/delete"),
    iac={
        "terraform": "azurerm_redis_firewall_rule",
        "terraform_local": "allowlist_redis_firewall_rules",
        "start_property": "startIP",  # what ARM and Bicep name the ends
        "end_property": "endIP",
    },
)
