"""Microsoft.Resources subscriptions: list and get."""

from __future__ import annotations

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, page, route
from allowlist.emulator.state import State, Subscription


def body(sub: Subscription) -> JSON:
    return {
        "id": f"/subscriptions/{sub.subscription_id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.subscription_id,
        "tenantId": sub.tenant_id,
        "displayName": sub.display_name,
        "state": sub.state,
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
        "tags": {},
    }


def routes(page_size: int) -> list[Route]:
    def list_subscriptions(request: Request, state: State) -> Response:
        with state.lock:
            subs = sorted(state.subscriptions.values(), key=lambda s: s.subscription_id)
            return page(request, [body(s) for s in subs], page_size)

    def get_subscription(request: Request, state: State) -> Response:
        sub = state.subscription(request.params["subscriptionId"])
        if sub is None:
            raise ArmError(
                404,
                "SubscriptionNotFound",
                f"The subscription '{request.params['subscriptionId']}' could not be found.",
            )
        return Response(200, body(sub))

    return [
        route("GET", "/subscriptions", list_subscriptions, "Microsoft.Resources/subscriptions/read"),
        route(
            "GET",
            "/subscriptions/{subscriptionId}",
            get_subscription,
            "Microsoft.Resources/subscriptions/read",
        ),
    ]
