"""How one site payload becomes AppEgress: which addresses count and when an app is not pinned."""

from __future__ import annotations

from typing import Any

from allowlist.sources.appservice import routing_of, to_egress
from allowlist.sources.egress import Routing
from tests.conftest import SUB1

ID = f"/subscriptions/{SUB1}/resourceGroups/rg/providers/Microsoft.Web/sites/app"


def payload(**props: Any) -> dict[str, Any]:
    base = {"outboundIpAddresses": "20.0.0.1", "possibleOutboundIpAddresses": "20.0.0.1,20.0.0.2"}
    return {"id": ID, "name": "app", "kind": "app", "location": "West Europe", "properties": {**base, **props}}


def test_possible_is_the_default_and_current_is_a_choice() -> None:
    assert to_egress(payload(), "possible").ipv4 == ("20.0.0.1", "20.0.0.2")
    current = to_egress(payload(), "current")
    assert current.ipv4 == ("20.0.0.1",) and current.source == "outboundIpAddresses"


def test_premium_v4_without_a_subnet_is_not_pinned() -> None:
    app = to_egress(payload(outboundIpAddresses="", possibleOutboundIpAddresses="", sku="PremiumV4"), "possible")
    assert not app.pinned
    assert app.reason == "PremiumV4 apps have no fixed outbound addresses without a NAT gateway on their subnet"


def test_every_form_of_route_all_is_seen_in_the_site_list() -> None:
    subnet = "/subscriptions/x/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
    forms = {
        "outboundVnetRouting.allTraffic": {"outboundVnetRouting": {"allTraffic": True}},
        "outboundVnetRouting.applicationTraffic": {"outboundVnetRouting": {"applicationTraffic": True}},
        "vnetRouteAllEnabled": {"vnetRouteAllEnabled": True},
        "siteConfig.vnetRouteAllEnabled": {"siteConfig": {"vnetRouteAllEnabled": True}},
        "publicNetworkAccess SecuredByPerimeter": {"publicNetworkAccess": "SecuredByPerimeter"},
    }
    for because, props in forms.items():
        app = to_egress(payload(virtualNetworkSubnetId=subnet, **props), "possible")
        assert not app.pinned and because in app.reason, because  # no subnet lookup here: unknown, never guessed
    assert to_egress(payload(virtualNetworkSubnetId=subnet), "possible").pinned  # integration alone: platform


def test_routing_fields_of_another_json_type_read_as_absent() -> None:
    odd = {"outboundVnetRouting": "yes", "siteConfig": [True], "hostingEnvironmentProfile": 7,
           "virtualNetworkSubnetId": 5, "sku": None, "vnetRouteAllEnabled": "true"}  # fmt: skip
    assert routing_of(odd) == Routing()
    assert routing_of({"hostingEnvironmentProfile": {"id": "/ase"}}).environment == "/ase"


def test_flex_consumption_is_not_pinned_and_consumption_is_warned() -> None:
    assert not to_egress(payload(sku="FlexConsumption"), "possible").pinned
    dynamic = to_egress(payload(sku="Dynamic"), "possible")
    assert dynamic.pinned and any("Consumption plan" in w for w in dynamic.warnings)


def test_ipv6_and_rejected_entries_are_reported() -> None:
    app = to_egress(
        payload(possibleOutboundIpAddresses="20.0.0.1,10.0.0.1", possibleOutboundIpv6Addresses="2603:1020::1"),
        "possible",
    )
    assert app.ipv4 == ("20.0.0.1",) and app.ipv6 == ("2603:1020::1",)
    assert app.warnings == (
        "ignored 10.0.0.1: not a public address: dropped",
        "1 IPv6 address(es) reported; IPv4 firewall rules cannot hold them",
    )


def test_ipv6_inside_the_ipv4_list_is_reported_not_lost() -> None:
    app = to_egress(payload(possibleOutboundIpAddresses="20.0.0.1,2603:1020::7"), "possible")
    assert app.ipv4 == ("20.0.0.1",) and app.ipv6 == ("2603:1020::7",)


def test_slot_names_and_ids() -> None:
    slot = to_egress({**payload(), "id": ID + "/slots/blue", "name": "app/blue"}, "possible")
    assert (slot.site_name, slot.slot, slot.resource_group, slot.subscription_id) == ("app", "blue", "rg", SUB1)


def test_apps_built_without_checks_are_what_the_checked_constructor_makes() -> None:
    """Discovery builds apps with AppEgress.canonical (no __post_init__): whatever a payload holds, the
    result must equal the checked constructor's, and compare and hash alike."""
    from allowlist.model import AppEgress
    from allowlist.sources.appservice import identify, with_addresses

    payloads = [
        {**payload(possibleOutboundIpAddresses=" 20.0.0.9 ,20.0.0.1,,20.0.0.1, 10.0.0.1, ::1, 2001:db8::1, 52.1.1.1"),
         "tags": {"z": "1", "a": "2", "n": 3}},
        {**payload(possibleOutboundIpv6Addresses="2603:1000::2, 2603:1000::1",
                   possibleOutboundIpAddresses="2603:1000::3,20.0.0.1"), "kind": None, "tags": "not an object"},
        {**payload(possibleOutboundIpAddresses=""), "id": ID + "/slots/staging"},
    ]  # fmt: skip
    for raw in payloads:
        light = identify(raw)
        assert light is not None and light == AppEgress(**vars(light))
        for source in ("possible", "current"):
            app, _ = with_addresses(light, raw, source)  # type: ignore[arg-type]
            checked = AppEgress(**vars(app))
            assert app == checked and hash(app) == hash(checked) and vars(app) == vars(checked), raw
