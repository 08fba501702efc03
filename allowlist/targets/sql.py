"""Azure SQL logical servers: named IPv4 start/end rules, one list call, synchronous PUT and DELETE.

Never uses the collection-level "replace all rules" call: it would delete rules allowlist does not own.
"""

from __future__ import annotations

from typing import Any

from allowlist.azure import ArmClients, describe
from allowlist.model import ExistingRule, IpRange, TargetRef
from allowlist.targets.base import Capabilities, TargetWriteError

SQL = Capabilities(
    named_ranges=True,
    ipv6=False,
    default_rule_limit=128,
    long_running_writes=False,
    max_name_length=128,
    forbidden_name_chars="<>*%&:;\\/?",
    protected_names=("AllowAllWindowsAzureIps",),
)


def is_limit_error(code: str, message: str) -> bool:
    """SQL answers a full firewall with TooManyFirewallRules / error 40611 ("supports a maximum of N")."""
    return code == "TooManyFirewallRules" or "40611" in message or ("maximum of" in message and "firewall" in message)


class SqlTarget:
    capabilities = SQL

    def __init__(self, ref: TargetRef, clients: ArmClients) -> None:
        self.ref = ref
        self._clients = clients

    def _ops(self) -> Any:
        return self._clients.sql(self.ref.subscription_id).firewall_rules

    def list_rules(self) -> list[ExistingRule]:
        rules = []
        for rule in self._ops().list_by_server(self.ref.resource_group, self.ref.name):
            props = rule.properties
            rules.append(ExistingRule(rule.name, IpRange.parse(props.start_ip_address, props.end_ip_address)))
        return rules

    def put_rule(self, name: str, rule_range: IpRange) -> None:
        from azure.core.exceptions import HttpResponseError

        body = {"properties": {"startIpAddress": rule_range.first, "endIpAddress": rule_range.last}}
        try:
            self._ops().create_or_update(self.ref.resource_group, self.ref.name, name, body)
        except HttpResponseError as exc:
            code = exc.error.code if exc.error is not None and exc.error.code else ""
            message = describe(exc)
            raise TargetWriteError(message, limit_hit=is_limit_error(code, message)) from exc

    def delete_rule(self, name: str) -> None:
        from azure.core.exceptions import HttpResponseError

        try:
            self._ops().delete(self.ref.resource_group, self.ref.name, name)
        except HttpResponseError as exc:
            raise TargetWriteError(describe(exc)) from exc
