"""Servers with named IPv4 start/end rules: Azure SQL (synchronous writes) and PostgreSQL / MySQL
flexible servers (writes are long-running operations, awaited with a bounded wait).

Never uses SQL's collection-level "replace all rules" call: it would delete rules allowlist does not own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allowlist.azure import ArmClients, describe
from allowlist.model import ExistingRule, IpRange, TargetRef
from allowlist.targets.base import Capabilities, Firewall, TargetWriteError

LIMIT_CODES = {"TooManyFirewallRules", "FirewallRuleLimitExceeded"}


def is_limit_error(code: str, message: str) -> bool:
    """A full firewall: SQL's TooManyFirewallRules / error 40611 ("supports a maximum of N"), and kin."""
    return code in LIMIT_CODES or "40611" in message or ("maximum of" in message and "firewall" in message)


def _range(rule: Any) -> IpRange:
    # azure-mgmt-sql and -postgresqlflexibleservers models are mappings over the REST JSON;
    # azure-mgmt-mysqlflexibleservers 1.0 still flattens properties onto the model.
    if isinstance(rule, Mapping):
        props = rule["properties"]
        return IpRange.parse(props["startIpAddress"], props["endIpAddress"])
    return IpRange.parse(rule.start_ip_address, rule.end_ip_address)


class _NamedRules:
    def __init__(self, ref: TargetRef, clients: ArmClients, capabilities: Capabilities) -> None:
        self.ref = ref
        self.capabilities = capabilities
        self._clients = clients

    def _ops(self) -> Any:
        return self._clients.client(self.ref.kind, self.ref.subscription_id).firewall_rules

    def read(self, prefix: str) -> Firewall:
        del prefix  # named rules carry their ownership in their names
        rules = self._ops().list_by_server(self.ref.resource_group, self.ref.name)
        return Firewall(tuple(ExistingRule(rule.name, _range(rule)) for rule in rules))

    def _write(self, call: Any, *args: Any) -> None:
        from azure.core.exceptions import HttpResponseError

        try:
            result = call(self.ref.resource_group, self.ref.name, *args)
            if self.capabilities.long_running_writes:
                self._wait(result)
        except HttpResponseError as exc:
            code = exc.error.code if exc.error is not None and exc.error.code else ""
            message = describe(exc)
            raise TargetWriteError(message, limit_hit=is_limit_error(code, message)) from exc

    def _wait(self, poller: Any) -> None:
        """Bounded: a stuck operation ends this target's run instead of hanging the pipeline."""
        limit = self._clients.settings.operation_timeout
        poller.result(timeout=limit)
        if not poller.done():
            raise TargetWriteError(
                f"the operation did not finish within {limit:g} s; it may still complete, run plan again"
            )

    def put_rule(self, name: str, rule_range: IpRange) -> None:
        body = {"properties": {"startIpAddress": rule_range.first, "endIpAddress": rule_range.last}}
        ops = self._ops()
        self._write(ops.begin_create_or_update if self.capabilities.long_running_writes else ops.create_or_update,
                    name, body)  # fmt: skip

    def delete_rule(self, name: str) -> None:
        ops = self._ops()
        self._write(ops.begin_delete if self.capabilities.long_running_writes else ops.delete, name)


class SqlTarget(_NamedRules):
    """Azure SQL logical servers."""


class FlexibleTarget(_NamedRules):
    """PostgreSQL and MySQL flexible servers."""
