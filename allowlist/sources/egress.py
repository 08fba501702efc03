"""Which addresses an app really leaves from, decided from what the site list and the network lookups
said. Pure: no network, so every mode is tested directly.

- An App Service Environment app: its environment's subnet (NAT gateway or firewall), else the
  environment's outbound addresses.
- Route-all (allTraffic, applicationTraffic, vnetRouteAllEnabled on the site or its siteConfig, or
  publicNetworkAccess SecuredByPerimeter) with an integration subnet: that subnet's egress; a subnet
  without a NAT gateway or default route leaves from the platform's addresses.
- Flex Consumption and Premium V4: pinned only through a resolved subnet.
- Otherwise the platform's addresses (`possibleOutboundIpAddresses`).
Declared egress in config wins over what ARM shows; an acknowledged app stays reported but is no gap.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from allowlist.model import AppEgress, Egress
from allowlist.scope import Acknowledgement, DeclaredEgress, Settings

# Function and workflow plans whose list the Functions documentation calls "not a definitive allowlist".
UNSURE_FUNCTION_SKUS = {
    "dynamic": "Consumption",
    "elasticpremium": "Elastic Premium",
    "workflowstandard": "Logic Apps Standard",
}


@dataclass(frozen=True)
class Routing:
    """What the site list says about where an app's traffic goes."""

    subnet: str | None = None  # virtualNetworkSubnetId
    route_all: str | None = None  # the property that sends all traffic into the VNet, if any
    environment: str | None = None  # hostingEnvironmentProfile.id
    sku: str = ""

    @property
    def needs_subnet(self) -> bool:
        """Whether the subnet decides the egress (and so must be looked up)."""
        return self.subnet is not None and (self.route_all is not None or self.fixed_only_through_subnet)

    @property
    def fixed_only_through_subnet(self) -> bool:
        sku = self.sku.lower()
        return sku == "flexconsumption" or sku.endswith("v4")


def _expand(addresses: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(a) for text in addresses for a in ipaddress.IPv4Network(text, strict=False))


def decide(
    app: AppEgress,
    routing: Routing,
    settings: Settings,
    subnet: Mapping[str, Egress] | None = None,
    environment: Egress | None = None,
    declared: Sequence[DeclaredEgress] = (),
    acknowledged: Sequence[Acknowledgement] = (),
) -> AppEgress:
    """`app` holds the platform's addresses; `subnet` / `environment` are the resolved Egress values."""
    decided = _mode(app, routing, settings, subnet, environment, declared)
    if not decided.pinned:
        ack = next((a for a in acknowledged if a.selector.matches(decided)), None)
        if ack is not None:
            decided = replace(decided, acknowledged=ack.reason)
    return decided


def _mode(
    app: AppEgress,
    routing: Routing,
    settings: Settings,
    subnet: Mapping[str, Egress] | None,
    environment: Egress | None,
    declared: Sequence[DeclaredEgress],
) -> AppEgress:
    by_app = next((d for d in declared if d.selector is not None and d.selector.matches(app)), None)
    if by_app is not None:
        return _declared(app, by_app)
    if routing.environment is not None:
        return _through(app, environment, f"runs in App Service Environment {routing.environment.rsplit('/', 1)[-1]}")
    through_subnet = routing.needs_subnet
    if through_subnet and routing.subnet is not None:
        by_subnet = next((d for d in declared if routing.subnet.lower() in d.subnets), None)
        if by_subnet is not None:
            return _declared(app, by_subnet)
        resolved = subnet.get(routing.subnet.lower()) if subnet is not None else None
        why = f"routes all traffic into its VNet ({routing.route_all})" if routing.route_all else f"is {routing.sku}"
        if resolved is not None and resolved.mode == "platform" and routing.route_all:
            note = f"{why}, but its subnet has no NAT gateway or default route: it leaves from its outbound addresses"
            kept = replace(app, warnings=(*app.warnings, note), service_endpoints=resolved.service_endpoints)
            return _functions(kept, routing, settings)
        return _through(app, resolved, why)
    if routing.fixed_only_through_subnet:
        plan = "Flex Consumption" if routing.sku.lower() == "flexconsumption" else routing.sku
        reason = f"{plan} apps have no fixed outbound addresses without a NAT gateway on their subnet"
        return replace(app, pinned=False, mode="unknown", reason=reason)
    return _functions(app, routing, settings)


def _declared(app: AppEgress, egress: DeclaredEgress) -> AppEgress:
    # Traffic that leaves elsewhere does not leave from the platform's IPv6 addresses either.
    return replace(app, ipv4=_expand(egress.addresses), ipv6=(), pinned=True, reason="", mode="declared",
                   chain=(f"[[egress]] {egress.name}",))  # fmt: skip


def _through(app: AppEgress, egress: Egress | None, why: str) -> AppEgress:
    """The app's traffic leaves where a resolved subnet or environment sends it."""
    if egress is None or egress.mode in ("unknown", "platform"):
        reason = egress.reason if egress is not None and egress.reason else "its egress could not be resolved"
        if egress is not None and egress.mode == "platform":
            reason = "its subnet has no NAT gateway or default route, so it has no fixed outbound addresses"
        chain = (app.id, *(egress.chain if egress is not None else ()))
        return replace(app, ipv4=(), ipv6=(), pinned=False, mode="unknown", reason=f"{why}: {reason}", chain=chain)
    return replace(
        app,
        ipv4=egress.ipv4,
        ipv6=(),  # the platform's IPv6 addresses are not where this traffic leaves from
        pinned=True,
        reason="",
        mode=egress.mode,
        chain=(app.id, *egress.chain),
        service_endpoints=egress.service_endpoints,
    )


def _functions(app: AppEgress, routing: Routing, settings: Settings) -> AppEgress:
    plan = UNSURE_FUNCTION_SKUS.get(routing.sku.lower())
    if plan is None or not app.pinned:
        return app
    doubt = f"{plan} plan: the Functions documentation says its outbound list is not a definitive allowlist"
    if settings.functions_pinned:
        return replace(app, warnings=(*app.warnings, doubt + " (used: functions_pinned = true)"))
    return replace(app, pinned=False, mode="unknown", reason=doubt)
