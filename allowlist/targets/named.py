"""Servers with named IPv4 start/end rules (Azure SQL, PostgreSQL and MySQL flexible servers): the
reads and writes they share. What differs between them lives in their own modules.

Never uses SQL's collection-level "replace all rules" call: it would delete rules allowlist does not own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from allowlist.armerrors import describe

if TYPE_CHECKING:
    from allowlist.azure import ArmClients

from allowlist.jsonshape import json_object
from allowlist.model import ExistingRule, IpRange, TargetRef
from allowlist.targets.base import (
    Backend,
    Capabilities,
    Firewall,
    RuleWrite,
    TargetWriteError,
    one_by_one,
    rest_writes,
    with_opaque,
)

# A failed long-running write changed nothing and may be tried again (PUT and DELETE are idempotent).
OPERATION_ATTEMPTS = 3


def is_limit_error(capabilities: Capabilities, code: str, message: str) -> bool:
    """A full firewall: SQL's error 40611 ("supports a maximum of N"), and the codes a back end names."""
    return (
        code in capabilities.limit_error_codes
        or "40611" in message
        or ("maximum of" in message and "firewall" in message)
    )


def rule_range(rule: Mapping[str, Any], version: int = 4) -> IpRange | None:
    """The range of a rule as ARM lists it, or None when it does not hold two addresses of that version
    in order."""
    props = json_object(rule.get("properties"))
    v4 = version == 4
    start, end = (
        props.get("startIpAddress" if v4 else "startIPv6Address"),
        props.get("endIpAddress" if v4 else "endIPv6Address"),
    )
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    try:
        found = IpRange.parse(start, end)
    except ValueError:
        return None
    return found if found.version == version else None


class NamedRules:
    def __init__(self, ref: TargetRef, clients: ArmClients, capabilities: Capabilities) -> None:
        self.ref = ref
        self.capabilities = capabilities
        self._clients = clients

    def _ops(self, version: int = 4) -> Any:
        client = self._clients.client(self.ref.kind, self.ref.subscription_id)
        return client.firewall_rules if version == 4 else client.ipv6_firewall_rules

    def _rules_path(self, version: int) -> str:
        return f"{self.ref.id}/{'firewallRules' if version == 4 else 'ipv6FirewallRules'}"

    def read(self, prefix: str) -> Firewall:
        del prefix  # named rules carry their ownership in their names
        api_version = self._clients.api_version(self.ref.kind)
        rules, opaque = [], []
        for version in (4, 6) if self.capabilities.ipv6 else (4,):
            # Raw JSON, not SDK models: building a model per rule cost more than reading it (2.4 s of
            # CPU for 27,000 rules at 10,000 apps).
            for rule in self._clients.list_raw(self._rules_path(version), api_version):
                name, found = rule.get("name"), rule_range(rule, version)
                if not isinstance(name, str):
                    opaque.append("<a rule without a name>")
                elif found is None:
                    opaque.append(name)
                else:
                    rules.append(ExistingRule(name, found))
        return with_opaque(rules, opaque, "rule '{}' does not hold a readable IP range")

    def _refusal(self, exc: Any) -> TargetWriteError:
        """The service's refusal of a write (an HttpResponseError), as one line; a full firewall says so."""
        code = exc.error.code if exc.error is not None and exc.error.code else ""
        message = describe(exc)
        return TargetWriteError(message, limit_hit=is_limit_error(self.capabilities, code, message))

    def _operation(self, start: Callable[[], Any]) -> None:
        """A long-running write (flexible servers), waited for; a failed operation changed nothing and is
        tried again."""
        from azure.core.exceptions import HttpResponseError

        for attempt in range(1, OPERATION_ATTEMPTS + 1):
            try:
                self._wait(start())
                return
            except HttpResponseError as exc:
                if (exc.status_code or 0) >= 400:
                    raise self._refusal(exc) from exc
                # the operation's status said Failed: its own code and message
                code = exc.error.code if exc.error is not None and exc.error.code else "Failed"
                message = f"the operation failed: {code}: {exc.error.message if exc.error else exc}"
                if attempt == OPERATION_ATTEMPTS:
                    raise TargetWriteError(message, limit_hit=is_limit_error(self.capabilities, code, message)) from exc

    def _wait(self, poller: Any) -> None:
        """Bounded: a stuck operation ends this target's run instead of hanging the pipeline."""
        limit = self._clients.settings.operation_timeout
        poller.result(timeout=limit)
        if not poller.done():
            raise TargetWriteError(
                f"the operation did not finish within {limit:g} s; it may still complete, run plan again"
            )

    @staticmethod
    def _body(rule_range: IpRange) -> dict[str, Any]:
        if rule_range.version == 6:
            return {"properties": {"startIPv6Address": rule_range.first, "endIPv6Address": rule_range.last}}
        return {"properties": {"startIpAddress": rule_range.first, "endIpAddress": rule_range.last}}

    def _write_operation(self, write: RuleWrite) -> None:
        ops, ref, name = self._ops(write.range.version), self.ref, write.name
        if write.action == "delete":
            self._operation(lambda: ops.begin_delete(ref.resource_group, ref.name, name))
        else:
            body = self._body(write.range)
            self._operation(lambda: ops.begin_create_or_update(ref.resource_group, ref.name, name, body))

    def write_all(self, writes: Sequence[RuleWrite], width: int, each: Callable[[], None]) -> list[Exception | None]:
        if self.capabilities.long_running_writes:  # one operation at a time: the service takes no more
            return one_by_one(writes, self._write_operation, each)
        # Writes that answer at once (SQL) go as their REST calls, together: no model built or read back.
        api_version = self._clients.api_version(self.ref.kind)

        def call(write: RuleWrite) -> tuple[str, str, Any]:
            version = write.range.version
            url = f"{self._rules_path(version)}/{quote(write.name, safe='')}?api-version={api_version}"
            return ("DELETE", url, None) if write.action == "delete" else ("PUT", url, self._body(write.range))

        return rest_writes(self._clients, [call(w) for w in writes], width, each, self._refusal)


def flexible_backend(kind: str, namespace: str, label: str, client: tuple[str, str], api_version: str) -> Backend:
    """PostgreSQL and MySQL flexible servers differ only in these; their writes are long-running operations
    (first answer 202) and their rule names take letters, digits, '-' and '_' (dots are written as '_')."""
    arm_type = f"{namespace}/flexibleServers"
    return Backend(
        kind=kind,
        arm_type=arm_type,
        capabilities=Capabilities(
            label=label,
            named_ranges=True,
            ipv6=False,
            default_rule_limit=128,
            long_running_writes=True,
            name_pattern=r"^[-\w]{1,128}$",
            name_dots_as="_",
            limit_error_codes=("FirewallRuleLimitExceeded",),
        ),
        client=client,
        api_version=api_version,
        opener=NamedRules,
        read_actions=(f"{arm_type}/firewallRules/read",),
        write_actions=(
            f"{arm_type}/firewallRules/write",
            f"{arm_type}/firewallRules/delete",
            f"{namespace}/locations/azureAsyncOperation/read",
            f"{namespace}/locations/operationResults/read",
        ),
        iac={
            "terraform": f"azurerm_{kind}_flexible_server_firewall_rule",
            "terraform_local": f"allowlist_{kind}_firewall_rules",
        },
    )
