"""PostgreSQL and MySQL flexible servers: named IPv4 firewall rules whose PUT and DELETE are
long-running operations (202, then Azure-AsyncOperation / Location polling)."""

from __future__ import annotations

import re
from collections.abc import Callable

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, route
from allowlist.emulator.lro import Operations
from allowlist.emulator.providers.common import NamedRuleReads
from allowlist.emulator.providers.sql import parse_rule
from allowlist.emulator.state import MYSQL, POSTGRESQL, DbServer, FirewallRule, State

# Each service's own rule-name pattern.
NAME_PATTERNS = {POSTGRESQL: re.compile(r"^[-\w]{1,128}$"), MYSQL: re.compile(r"^[-\w]{1,128}$")}


def rule_body(server: DbServer, rule: FirewallRule) -> JSON:
    return {
        "id": f"{server.id}/firewallRules/{rule.name}",
        "name": rule.name,
        "type": f"{server.type}/firewallRules",
        "properties": {"startIpAddress": rule.start, "endIpAddress": rule.end},
    }


def server_body(server: DbServer) -> JSON:
    return {
        "id": server.id,
        "name": server.name,
        "type": server.type,
        "location": server.location,
        "properties": {
            "fullyQualifiedDomainName": f"{server.name}.{'postgres' if server.type == POSTGRESQL else 'mysql'}"
            ".database.azure.com",
            "state": "Ready",
            "network": {"publicNetworkAccess": "Enabled"},
        },
    }


def routes(
    resource_type: str, page_size: int, operations: Operations, fail_writes: Callable[[Request], bool]
) -> list[Route]:
    namespace = resource_type.split("/")[0]
    servers = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/" + resource_type
    rules = servers + "/{serverName}/firewallRules"
    pattern = NAME_PATTERNS[resource_type]

    reads = NamedRuleReads(resource_type, page_size, server_body, rule_body)
    find = reads.find

    def put_rule(request: Request, state: State) -> Response:
        name = request.params["ruleName"]
        if not pattern.match(name):
            raise ArmError(
                400,
                "InvalidParameterValue",
                f"Invalid value given for parameter firewallRuleName: '{name}'. Use letters, digits, '-' and '_' "
                "(1 to 128 characters).",
            )
        payload = request.json()
        with state.lock:
            server = find(request, state)
            rule = parse_rule(name, payload)
            if name.lower() not in server.rules and len(server.rules) >= state.rule_limit(resource_type):
                raise ArmError(
                    400,
                    "FirewallRuleLimitExceeded",
                    f"The server already has the maximum of {state.rule_limit(resource_type)} firewall rules.",
                )

        def complete() -> JSON:
            state.store_rule(server.id, server.rules, name, rule.start, rule.end)
            return rule_body(server, server.rules[name.lower()])

        return operations.start(request, namespace, server.location, complete, fail_writes(request), server.id)

    def delete_rule(request: Request, state: State) -> Response:
        with state.lock:
            server = find(request, state)
            if request.params["ruleName"].lower() not in server.rules:
                return Response(204)

        def complete() -> None:
            state.remove_rule(server.id, server.rules, request.params["ruleName"])

        return operations.start(request, namespace, server.location, complete, fail_writes(request), server.id)

    kind = resource_type
    return [
        route("GET", "/subscriptions/{subscriptionId}/providers/" + resource_type, reads.list_servers, f"{kind}/read"),
        route("GET", rules, reads.list_rules, f"{kind}/firewallRules/read"),
        route("GET", rules + "/{ruleName}", reads.get_rule, f"{kind}/firewallRules/read"),
        route("PUT", rules + "/{ruleName}", put_rule, f"{kind}/firewallRules/write"),
        route("DELETE", rules + "/{ruleName}", delete_rule, f"{kind}/firewallRules/delete"),
        *operations.routes(namespace),
    ]
