"""Azure Cache for Redis firewall rules (`Microsoft.Cache/Redis/{cache}/firewallRules`), in the shapes of
the official examples: `startIP` / `endIP`, names of letters, digits and underscores; a list item is
named `rule`, a single rule `cache/rule`; PUT answers 201 or 200, DELETE 200 or 204."""

from __future__ import annotations

import re
from collections.abc import Callable

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, not_found, page, route
from allowlist.emulator.providers.common import find_resource
from allowlist.emulator.state import REDIS, DbServer, FirewallRule, State

NAME = re.compile(r"^[A-Za-z0-9_]{1,128}$")


def rule_body(cache: DbServer, rule: FirewallRule, listed: bool = False) -> JSON:
    return {
        "id": f"{cache.id}/firewallRules/{rule.name}",
        "name": rule.name if listed else f"{cache.name}/{rule.name}",
        "type": "Microsoft.Cache/Redis/firewallRules",
        "properties": {"startIP": rule.start, "endIP": rule.end},
    }


def cache_body(cache: DbServer) -> JSON:
    return {
        "id": cache.id, "name": cache.name, "type": "Microsoft.Cache/Redis", "location": cache.location,
        "properties": {"provisioningState": "Succeeded", "hostName": f"{cache.name}.redis.cache.windows.net",
                       "port": 6379, "sslPort": 6380, "publicNetworkAccess": "Enabled"},
    }  # fmt: skip


def routes(page_size: int, fail_write: Callable[[Request], bool]) -> list[Route]:
    caches = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/" + REDIS
    rules = caches + "/{name}/firewallRules"

    def find(request: Request, state: State) -> DbServer:
        return find_resource(request, state, state.servers, REDIS, "name")

    def get_cache(request: Request, state: State) -> Response:
        with state.lock:
            return Response(200, cache_body(find(request, state)))

    def list_rules(request: Request, state: State) -> Response:
        with state.lock:
            cache = find(request, state)
            ordered = sorted(cache.rules.values(), key=lambda r: r.name.lower())
            return page(request, [rule_body(cache, r, listed=True) for r in ordered], page_size)

    def get_rule(request: Request, state: State) -> Response:
        with state.lock:
            cache = find(request, state)
            rule = cache.rules.get(request.params["ruleName"].lower())
            if rule is None:
                raise not_found(f"{REDIS}/firewallRules", f"{cache.name}/{request.params['ruleName']}")
            return Response(200, rule_body(cache, rule))

    def put_rule(request: Request, state: State) -> Response:
        name = request.params["ruleName"]
        if not NAME.match(name):
            raise ArmError(
                400, "InvalidParameter", f"The rule name '{name}' may hold letters, digits and underscores only."
            )
        payload = request.json()
        props = payload.get("properties") if isinstance(payload, dict) else None
        if not isinstance(props, dict) or not all(isinstance(props.get(k), str) for k in ("startIP", "endIP")):
            raise ArmError(400, "InvalidRequestBody", "The rule needs properties.startIP and properties.endIP.")
        from allowlist.emulator.providers.sql import parse_rule

        parsed = parse_rule(name, {"properties": {"startIpAddress": props["startIP"], "endIpAddress": props["endIP"]}})
        with state.lock:
            cache = find(request, state)
            if fail_write(request):  # fault `lro-fail`: the cache is busy, nothing changes
                raise ArmError(409, "Conflict", f"The cache '{cache.name}' is updating. Retry later.")
            before = cache.rules.get(name.lower())
            if before is None and len(cache.rules) >= state.rule_limit(REDIS):
                raise ArmError(
                    400, "FirewallRuleLimitExceeded", f"A cache has at most {state.rule_limit(REDIS)} rules."
                )
            state.store_rule(cache.id, cache.rules, name, parsed.start, parsed.end)
            return Response(201 if before is None else 200, rule_body(cache, cache.rules[name.lower()]))

    def delete_rule(request: Request, state: State) -> Response:
        with state.lock:
            cache = find(request, state)
            if state.remove_rule(cache.id, cache.rules, request.params["ruleName"]) is None:
                return Response(204)
            return Response(200)

    return [
        route("GET", caches + "/{name}", get_cache, f"{REDIS}/read"),
        route("GET", rules, list_rules, f"{REDIS}/firewallRules/read"),
        route("GET", rules + "/{ruleName}", get_rule, f"{REDIS}/firewallRules/read"),
        route("PUT", rules + "/{ruleName}", put_rule, f"{REDIS}/firewallRules/write"),
        route("DELETE", rules + "/{ruleName}", delete_rule, f"{REDIS}/firewallRules/delete"),
    ]
