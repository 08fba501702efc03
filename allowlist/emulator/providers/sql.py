"""Microsoft.Sql servers and their IPv4 firewall rules, with the service's validation and limit.

Validation is written here independently of allowlist's own planner on purpose: the emulator plays
the service, so a mistake in one is caught by the other.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, page, route
from allowlist.emulator.providers.common import NamedRuleReads
from allowlist.emulator.state import SQL, DbServer, FirewallRule, State

SERVER_READ = "Microsoft.Sql/servers/read"
RULE_READ = "Microsoft.Sql/servers/firewallRules/read"
RULE_WRITE = "Microsoft.Sql/servers/firewallRules/write"
RULE_DELETE = "Microsoft.Sql/servers/firewallRules/delete"
FORBIDDEN_NAME_CHARS = set("<>*%&:;\\/?")


def server_body(server: DbServer) -> JSON:
    return {
        "id": server.id,
        "name": server.name,
        "type": "Microsoft.Sql/servers",
        "location": server.location,
        "kind": "v12.0",
        "properties": {
            "fullyQualifiedDomainName": f"{server.name}.database.windows.net",
            "administratorLogin": "sqladmin",
            "version": "12.0",
            "state": "Ready",
            "workspaceFeature": "Connected",
            "publicNetworkAccess": "Enabled",
            "restrictOutboundNetworkAccess": "Disabled",
            "privateEndpointConnections": [],
        },
    }


def rule_body(server: DbServer, rule: FirewallRule, with_type: bool = True) -> JSON:
    out: JSON = {
        "id": f"{server.id}/firewallRules/{rule.name}",
        "name": rule.name,
        "type": "Microsoft.Sql/servers/firewallRules",
        "properties": {"startIpAddress": rule.start, "endIpAddress": rule.end},
    }
    if not with_type:  # the service's 201 answer carries no type
        del out["type"]
    return out


def validate_name(name: str) -> None:
    if not name:
        raise ArmError(400, "FirewallRuleNameEmpty", "The firewall rule name cannot be empty.")
    if len(name) > 128:
        raise ArmError(400, "FirewallRuleNameTooLong", "The firewall rule name exceeds the 128 character limit.")
    if FORBIDDEN_NAME_CHARS & set(name) or name.endswith("."):
        raise ArmError(
            400,
            "FirewallRuleNameInvalid",
            "Firewall rule name cannot contain the characters '<, >, *, %, &, :, ;, \\, /, ?' and cannot end with '.'.",
        )


def parse_rule(name: str, payload: Any) -> FirewallRule:
    props = payload.get("properties") if isinstance(payload, dict) else None
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must contain 'properties'.")
    start, end = props.get("startIpAddress"), props.get("endIpAddress")
    try:
        first = ipaddress.IPv4Address(str(start))
        last = ipaddress.IPv4Address(str(end))
    except ValueError as exc:
        raise ArmError(
            400, "FirewallRuleNotIPv4Address", f"The firewall rule '{name}' must use IPv4 addresses."
        ) from exc
    if first > last:
        raise ArmError(
            400,
            "FirewallRuleInvalidRange",
            f"The firewall rule '{name}' has a start IP address greater than its end IP address.",
        )
    return FirewallRule(name, str(first), str(last))


def parse_rule6(name: str, payload: Any) -> FirewallRule:
    props = payload.get("properties") if isinstance(payload, dict) else None
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must contain 'properties'.")
    try:
        first = ipaddress.IPv6Address(str(props.get("startIPv6Address")))
        last = ipaddress.IPv6Address(str(props.get("endIPv6Address")))
    except ValueError as exc:
        raise ArmError(
            400, "FirewallRuleNotIPv6Address", f"The firewall rule '{name}' must use IPv6 addresses."
        ) from exc
    if first > last:
        message = f"The firewall rule '{name}' has a start IP address greater than its end IP address."
        raise ArmError(400, "FirewallRuleInvalidRange", message)
    return FirewallRule(name, str(first), str(last))


def rule6_body(server: DbServer, rule: FirewallRule) -> JSON:
    return {
        "id": f"{server.id}/ipv6FirewallRules/{rule.name}",
        "name": rule.name,
        "type": "Microsoft.Sql/servers/ipv6FirewallRules",
        "properties": {"startIPv6Address": rule.start, "endIPv6Address": rule.end},
    }


def too_many(limit: int) -> ArmError:
    # Error 40611 as the service words it; the limit counts AllowAllWindowsAzureIps too.
    return ArmError(
        400,
        "TooManyFirewallRules",
        f"Windows Azure SQL Database supports a maximum of {limit} firewall rules. (error 40611)",
    )


def routes(page_size: int) -> list[Route]:
    servers = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Sql/servers"
    rules = servers + "/{serverName}/firewallRules"

    reads = NamedRuleReads(SQL, page_size, server_body, rule_body)
    find = reads.find

    def get_server(request: Request, state: State) -> Response:
        with state.lock:
            return Response(200, server_body(find(request, state)))

    def put_rule(request: Request, state: State) -> Response:
        name = request.params["ruleName"]
        validate_name(name)
        payload = request.json()
        with state.lock:
            server = find(request, state)
            rule = parse_rule(name, payload)
            if name.lower() not in server.rules and len(server.rules) + len(server.rules6) >= state.rule_limit(SQL):
                raise too_many(state.rule_limit(SQL))
            before = state.store_rule(server.id, server.rules, name, rule.start, rule.end)
            rule = server.rules[name.lower()]
            if before is None:
                return Response(201, rule_body(server, rule, with_type=False))
            return Response(200, rule_body(server, rule))

    def delete_rule(request: Request, state: State) -> Response:
        with state.lock:
            server = find(request, state)
            if state.remove_rule(server.id, server.rules, request.params["ruleName"]) is None:
                return Response(204)
            return Response(200)

    def replace_rules(request: Request, state: State) -> Response:
        payload = request.json()
        values = payload.get("values") if isinstance(payload, dict) else None
        if not isinstance(values, list):
            raise ArmError(400, "InvalidRequestContent", "The request content must contain 'values'.")
        new: dict[str, FirewallRule] = {}
        for item in values:
            name = str(item.get("name", "")).strip() if isinstance(item, dict) else ""
            validate_name(name)
            new[name.lower()] = parse_rule(name, item)
        if len(new) > state.rule_limit(SQL):
            raise too_many(state.rule_limit(SQL))
        with state.lock:
            server = find(request, state)
            state.record_changes(server.id, server.rules, new)
            server.rules = new
            if not new:
                return Response(202)
            return Response(200, rule_body(server, next(iter(new.values()))))

    rules6 = servers + "/{serverName}/ipv6FirewallRules"

    def list_rules6(request: Request, state: State) -> Response:
        with state.lock:
            server = find(request, state)
            ordered = sorted(server.rules6.values(), key=lambda r: r.name.lower())
            return page(request, [rule6_body(server, r) for r in ordered], page_size)

    def put_rule6(request: Request, state: State) -> Response:
        name = request.params["ruleName"]
        validate_name(name)
        payload = request.json()
        with state.lock:
            server = find(request, state)
            rule = parse_rule6(name, payload)
            if name.lower() not in server.rules6 and len(server.rules) + len(server.rules6) >= state.rule_limit(SQL):
                raise too_many(state.rule_limit(SQL))
            before = state.store_rule(server.id, server.rules6, name, rule.start, rule.end)
            rule = server.rules6[name.lower()]
            return Response(200 if before is not None else 201, rule6_body(server, rule))

    def delete_rule6(request: Request, state: State) -> Response:
        with state.lock:
            server = find(request, state)
            if state.remove_rule(server.id, server.rules6, request.params["ruleName"]) is None:
                return Response(204)
            return Response(200)

    v6_read, v6_write = "Microsoft.Sql/servers/ipv6FirewallRules/read", "Microsoft.Sql/servers/ipv6FirewallRules/write"
    return [
        route("GET", rules6, list_rules6, v6_read),
        route("PUT", rules6 + "/{ruleName}", put_rule6, v6_write),
        route("DELETE", rules6 + "/{ruleName}", delete_rule6, "Microsoft.Sql/servers/ipv6FirewallRules/delete"),
        route(
            "GET",
            "/subscriptions/{subscriptionId}/providers/Microsoft.Sql/servers",
            reads.list_servers,
            SERVER_READ,
        ),
        route("GET", servers + "/{serverName}", get_server, SERVER_READ),
        route("GET", rules, reads.list_rules, RULE_READ),
        route("PUT", rules, replace_rules, RULE_WRITE),
        route("GET", rules + "/{ruleName}", reads.get_rule, RULE_READ),
        route("PUT", rules + "/{ruleName}", put_rule, RULE_WRITE),
        route("DELETE", rules + "/{ruleName}", delete_rule, RULE_DELETE),
    ]
