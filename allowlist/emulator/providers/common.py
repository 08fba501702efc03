"""Checks every subscription-scoped route makes before it looks at a resource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from allowlist.emulator.http import ArmError, Request, not_found
from allowlist.emulator.state import State

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
