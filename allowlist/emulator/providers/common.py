"""Checks every subscription-scoped route makes before it looks at a resource."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from allowlist.emulator.http import JSON, ArmError, Request, Response, not_found, page
from allowlist.emulator.state import DbServer, FirewallRule, State, overlay

T = TypeVar("T")


def require_subscription(request: Request, state: State) -> None:
    sub_id = request.params["subscriptionId"]
    if state.subscription(sub_id) is None:
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub_id}' could not be found.")


def require_resource_group(request: Request, state: State) -> None:
    require_subscription(request, state)
    group = request.params["resourceGroupName"]
    if not state.has_resource_group(request.params["subscriptionId"], group):
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")


def find_resource(request: Request, state: State, table: Mapping[str, T], resource_type: str, name_param: str) -> T:
    """The resource a `.../resourceGroups/G/providers/TYPE/{name_param}` path names, or ARM's 404."""
    require_resource_group(request, state)
    p = request.params
    resource_id = (
        f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
        f"/providers/{resource_type}/{p[name_param]}"
    )
    found = table.get(resource_id.lower())
    if found is None:
        raise not_found(resource_type, p[name_param], p["resourceGroupName"])
    return found


class NamedRuleReads:
    """The read side every server with named firewall rules shares: list servers, find, list and get rules."""

    def __init__(
        self,
        resource_type: str,
        page_size: int,
        server_body: Callable[[DbServer], JSON],
        rule_body: Callable[[DbServer, FirewallRule], JSON],
    ) -> None:
        self.resource_type = resource_type
        self.page_size = page_size
        self.server_body = server_body
        self.rule_body = rule_body

    def find(self, request: Request, state: State) -> DbServer:
        return find_resource(request, state, state.servers, self.resource_type, "serverName")

    def list_servers(self, request: Request, state: State) -> Response:
        require_subscription(request, state)
        sub = request.params["subscriptionId"].lower()
        with state.lock:
            found = sorted(
                (
                    s
                    for s in state.servers.values()
                    if s.type == self.resource_type and s.subscription_id.lower() == sub
                ),
                key=lambda s: s.id.lower(),
            )
            return page(request, [self.server_body(s) for s in found], self.page_size)

    def list_rules(self, request: Request, state: State) -> Response:
        with state.lock:
            server = self.find(request, state)
            ordered = sorted(server.rules.values(), key=lambda r: r.name.lower())
            bodies = [
                overlay(self.rule_body(server, r), server.rule_overrides.get(r.name.lower(), {})) for r in ordered
            ]
            return page(request, bodies, self.page_size)

    def get_rule(self, request: Request, state: State) -> Response:
        with state.lock:
            server = self.find(request, state)
            rule = server.rules.get(request.params["ruleName"].lower())
            if rule is None:
                raise not_found(f"{self.resource_type}/firewallRules", f"{server.name}/{request.params['ruleName']}")
            return Response(200, self.rule_body(server, rule))
