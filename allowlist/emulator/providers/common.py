"""Checks every subscription-scoped route makes before it looks at a resource."""

from __future__ import annotations

from allowlist.emulator.http import ArmError, Request
from allowlist.emulator.state import State


def require_subscription(request: Request, state: State) -> None:
    sub_id = request.params["subscriptionId"]
    if state.subscription(sub_id) is None:
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub_id}' could not be found.")


def require_resource_group(request: Request, state: State) -> None:
    require_subscription(request, state)
    group = request.params["resourceGroupName"]
    if not state.has_resource_group(request.params["subscriptionId"], group):
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
