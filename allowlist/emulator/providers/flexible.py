"""PostgreSQL and MySQL flexible servers: named IPv4 firewall rules whose PUT and DELETE are
long-running operations (202, then Azure-AsyncOperation / Location polling)."""

from __future__ import annotations

import re
from collections.abc import Callable

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, not_found, page, route
from allowlist.emulator.lro import Operations
from allowlist.emulator.providers.common import find_resource, require_subscription
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

    def find(request: Request, state: State) -> DbServer:
        return find_resource(request, state, state.servers, resource_type, "serverName")

    def list_servers(request: Request, state: State) -> Response:
        require_subscription(request, state)
        sub = request.params["subscriptionId"].lower()
        with state.lock:
            found = [s for s in state.servers.values() if s.type == resource_type and s.subscription_id.lower() == sub]
            return page(request, [server_body(s) for s in sorted(found, key=lambda s: s.id.lower())], page_size)

    def list_rules(request: Request, state: State) -> Response:
        with state.lock:
            server = find(request, state)
            ordered = sorted(server.rules.values(), key=lambda r: r.name.lower())
            return page(request, [rule_body(server, r) for r in ordered], page_size)

    def get_rule(request: Request, state: State) -> Response:
        with state.lock:
            server = find(request, state)
            rule = server.rules.get(request.params["ruleName"].lower())
            if rule is None:
                raise not_found(f"{resource_type}/firewallRules", f"{server.name}/{request.params['ruleName']}")
            return Response(200, rule_body(server, rule))

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
            before = server.rules.get(name.lower())
            after = FirewallRule(before.name if before else name, rule.start, rule.end)
            server.rules[name.lower()] = after
            if before != after:
                state.record(server.id, after.name, before, after)
            return rule_body(server, after)

        return operations.start(request, namespace, server.location, complete, fail_writes(request))

    def delete_rule(request: Request, state: State) -> Response:
        with state.lock:
            server = find(request, state)
            if request.params["ruleName"].lower() not in server.rules:
                return Response(204)

        def complete() -> None:
            before = server.rules.pop(request.params["ruleName"].lower(), None)
            if before is not None:
                state.record(server.id, before.name, before, None)

        return operations.start(request, namespace, server.location, complete, fail_writes(request))

    kind = resource_type
    return [
        route("GET", "/subscriptions/{subscriptionId}/providers/" + resource_type, list_servers, f"{kind}/read"),
        route("GET", rules, list_rules, f"{kind}/firewallRules/read"),
        route("GET", rules + "/{ruleName}", get_rule, f"{kind}/firewallRules/read"),
        route("PUT", rules + "/{ruleName}", put_rule, f"{kind}/firewallRules/write"),
        route("DELETE", rules + "/{ruleName}", delete_rule, f"{kind}/firewallRules/delete"),
        *operations.routes(namespace),
    ]
