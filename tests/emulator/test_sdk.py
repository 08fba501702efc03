"""The emulator driven by the real azure-mgmt-web, azure-mgmt-sql and subscription clients over HTTPS."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.resource.subscriptions import SubscriptionClient
from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.web import WebSiteManagementClient

from allowlist.azure import ArmClients
from allowlist.emulator import Emulator, FaultConfig
from tests.conftest import SUB1, SUB2, StaticCred, sdk_options


def web(emu: Emulator, sub: str = SUB1, **kw: Any) -> WebSiteManagementClient:
    return WebSiteManagementClient(StaticCred(), sub, **{**sdk_options(emu), **kw})


def sql(emu: Emulator, sub: str = SUB1, **kw: Any) -> SqlManagementClient:
    return SqlManagementClient(StaticCred(), sub, **{**sdk_options(emu), **kw})


def rule(start: str, end: str | None = None) -> dict[str, Any]:
    return {"properties": {"startIpAddress": start, "endIpAddress": end or start}}


def test_subscriptions_list_pages(emulator: Emulator) -> None:
    client = SubscriptionClient(StaticCred(), **sdk_options(emulator))
    subs = [s.subscription_id for s in client.subscriptions.list()]
    assert subs == [SUB1, SUB2]
    assert client.subscriptions.get(SUB2).display_name == "Two"


def test_sites_list_is_really_paged_with_absolute_next_links(emulator: Emulator) -> None:
    names = [s.name for s in web(emulator).web_apps.list()]
    assert names == ["func-c", "web-a", "web-b"]  # page size 2: two pages
    pages = [r for r in emulator.requests if r.path.endswith("/Microsoft.Web/sites")]
    assert len(pages) == 2 and "$skiptoken=2" in pages[1].query


def test_sites_by_group_get_and_raw_properties(emulator: Emulator) -> None:
    client = web(emulator)
    assert [s.name for s in client.web_apps.list_by_resource_group("rg-web")] == ["web-a", "web-b"]
    site = client.web_apps.get("rg-web", "web-b")
    assert site.kind == "app,linux"
    assert site.properties.possible_outbound_ip_addresses == "20.0.0.2,20.0.0.3,40.0.0.9"
    assert site.tags == {"team": "a"}
    with pytest.raises(ResourceNotFoundError):
        client.web_apps.get("rg-web", "nope")


def test_slots_list_and_get(emulator: Emulator) -> None:
    client = web(emulator)
    slots = list(client.web_apps.list_slots("rg-web", "web-a"))
    assert [s.name for s in slots] == ["web-a/staging"]
    assert slots[0].type == "Microsoft.Web/sites/slots"
    assert slots[0].properties.possible_outbound_ip_addresses == "20.0.0.1,20.0.0.2"
    assert client.web_apps.get_slot("rg-web", "web-a", "staging").id.endswith("/sites/web-a/slots/staging")
    assert list(client.web_apps.list_slots("rg-web", "web-b")) == []


def test_ipv6_and_vnet_fields_are_in_the_raw_payload(estate: dict[str, Any]) -> None:
    from allowlist.emulator import build_estate

    estate["sites"][0].update(
        possible_outbound_ipv6_addresses="2603:1020::1",
        virtual_network_subnet_id="/subscriptions/x/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/s",
        application_traffic=True,
    )
    loaded = build_estate(estate)
    with Emulator(loaded.state, page_size=5) as emu:
        site = web(emu).web_apps.get("rg-web", "web-a")
        assert site["properties"]["possibleOutboundIpv6Addresses"] == "2603:1020::1"
        routing = site.properties.outbound_vnet_routing
        assert routing.application_traffic is True and routing.all_traffic is False  # stated apart, as ARM does
        assert "vnetRouteAllEnabled" not in site["properties"]  # gone from the site at api-version 2025-05-01
        assert site.properties.virtual_network_subnet_id.endswith("/subnets/s")


def test_firewall_rule_create_update_get_delete(emulator: Emulator) -> None:
    ops = sql(emulator).firewall_rules
    created = ops.create_or_update("rg-data", "sql-one", "r1", rule("1.2.3.4"))
    assert created.name == "r1" and created.properties.start_ip_address == "1.2.3.4"
    assert emulator.requests[-1].status == 201
    updated = ops.create_or_update("rg-data", "sql-one", "r1", rule("1.2.3.4", "1.2.3.9"))
    assert updated.properties.end_ip_address == "1.2.3.9" and emulator.requests[-1].status == 200
    assert ops.get("rg-data", "sql-one", "R1").properties.end_ip_address == "1.2.3.9"  # names ignore case
    ops.delete("rg-data", "sql-one", "r1")
    assert emulator.requests[-1].status == 200
    ops.delete("rg-data", "sql-one", "r1")
    assert emulator.requests[-1].status == 204
    assert [r.name for r in ops.list_by_server("rg-data", "sql-one")] == ["AllowAllWindowsAzureIps", "office"]


def test_collection_replace_swaps_every_rule(emulator: Emulator) -> None:
    ops = sql(emulator).firewall_rules
    ops.replace("rg-data", "sql-one", {"values": [{"name": "only", **rule("9.9.9.9")}]})
    assert [r.name for r in ops.list_by_server("rg-data", "sql-one")] == ["only"]
    ops_events = [(e.op, e.name) for e in emulator.state.timeline]
    assert ("delete", "office") in ops_events and ("create", "only") in ops_events


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("bad:name", rule("1.2.3.4"), "FirewallRuleNameInvalid"),
        ("ends-with-dot.", rule("1.2.3.4"), "FirewallRuleNameInvalid"),
        ("x" * 129, rule("1.2.3.4"), "FirewallRuleNameTooLong"),
        ("v6", rule("2001:db8::1"), "FirewallRuleNotIPv4Address"),
        ("backwards", rule("1.2.3.9", "1.2.3.4"), "FirewallRuleInvalidRange"),
    ],
)
def test_rule_validation_errors(emulator: Emulator, name: str, body: dict[str, Any], code: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        sql(emulator).firewall_rules.create_or_update("rg-data", "sql-one", name, body)
    assert caught.value.status_code == 400
    assert caught.value.error.code == code


def test_rule_limit_counts_allow_azure_and_answers_40611(estate: dict[str, Any]) -> None:
    from allowlist.emulator import build_estate

    estate["emulator"]["sql_rule_limit"] = 3
    loaded = build_estate(estate)
    with Emulator(loaded.state) as emu:
        ops = sql(emu).firewall_rules
        ops.create_or_update("rg-data", "sql-one", "third", rule("5.5.5.5"))
        ops.create_or_update("rg-data", "sql-one", "third", rule("5.5.5.6"))  # an update needs no room
        with pytest.raises(HttpResponseError) as caught:
            ops.create_or_update("rg-data", "sql-one", "fourth", rule("5.5.5.7"))
        assert caught.value.error.code == "TooManyFirewallRules"
        assert "maximum of 3 firewall rules" in caught.value.error.message


def test_missing_token_is_401(emulator: Emulator) -> None:
    import requests

    answer = requests.get(
        f"{emulator.base_url}/subscriptions?api-version=2022-12-01", verify=str(emulator.ca_path), timeout=5
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "AuthenticationFailed"


def test_401_reaches_the_sdk_as_an_authentication_error(emulator: Emulator) -> None:
    class NoToken(StaticCred):
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            from azure.core.credentials import AccessToken

            return AccessToken("", int(time.time()) + 60)

    client = WebSiteManagementClient(NoToken(), SUB1, **sdk_options(emulator))
    with pytest.raises(ClientAuthenticationError):
        list(client.web_apps.list())


def test_api_version_is_required(emulator: Emulator) -> None:
    import requests

    answer = requests.get(
        f"{emulator.base_url}/subscriptions",
        headers={"Authorization": "Bearer x"},
        verify=str(emulator.ca_path),
        timeout=5,
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "MissingApiVersionParameter"


def test_forbidden_scope_is_403_authorization_failed(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(forbid=(f"/subscriptions/{SUB2}",))
    assert [s.name for s in web(emulator).web_apps.list()]  # SUB1 is fine
    with pytest.raises(HttpResponseError) as caught:
        list(web(emulator, SUB2).web_apps.list())
    assert caught.value.status_code == 403 and caught.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Web/sites/read" in caught.value.error.message


def test_throttling_429_retry_after_is_honoured_by_the_sdk(emulator: Emulator) -> None:
    from allowlist.emulator.faults import Bucket

    emulator.faults.config = FaultConfig(reads=Bucket(2, 1.0))
    client = web(emulator)
    started = time.monotonic()
    names = [s.name for s in client.web_apps.list()] + [s.name for s in client.web_apps.list()]
    assert names == ["func-c", "web-a", "web-b"] * 2
    throttled = [r for r in emulator.requests if r.status == 429]
    assert throttled, "the third read in a burst of two must be throttled"
    first = throttled[0]
    retry = next(r for r in emulator.requests if r.at > first.at and r.status == 200)
    assert retry.at - first.at >= 0.9  # the SDK waited for Retry-After: 1, not its zero back-off
    assert time.monotonic() - started < 10


def test_server_errors_are_retried_to_success(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(error_rate=0.5, seed=7)
    ops = sql(emulator, retry_total=10, retry_status=10).firewall_rules
    for i in range(6):
        ops.create_or_update("rg-data", "sql-one", f"r{i}", rule(f"9.9.9.{i}"))
    assert any(r.status == 500 for r in emulator.requests), "seed 7 at 50% must fail some requests"
    assert len(list(ops.list_by_server("rg-data", "sql-one"))) == 8


def test_dropped_connections_are_retried(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(drop_rate=0.5, seed=3)
    client = web(emulator, retry_total=10, retry_read=10, retry_connect=10)
    for _ in range(4):
        assert [s.name for s in client.web_apps.list()] == ["func-c", "web-a", "web-b"]
    assert any(r.status == 0 for r in emulator.requests)


def test_faults_are_deterministic_for_a_seed(estate: dict[str, Any]) -> None:
    from allowlist.emulator import build_estate

    def statuses(seed: int) -> list[int]:
        loaded = build_estate(estate)
        with Emulator(loaded.state, faults=FaultConfig(error_rate=0.5, seed=seed)) as emu:
            list(web(emu, retry_total=10, retry_status=10).web_apps.list())
            return [r.status for r in emu.requests]

    assert statuses(11) == statuses(11)
    assert statuses(11) != statuses(12) or statuses(11) != statuses(13)


def test_latency_is_added_to_every_answer(emulator: Emulator) -> None:
    emulator.faults.config = FaultConfig(latency_ms=50)
    list(web(emulator).web_apps.list())
    assert all(r.duration >= 0.05 for r in emulator.requests)


def test_timeline_replays_every_rule_state(emulator: Emulator) -> None:
    ops = sql(emulator).firewall_rules
    ops.create_or_update("rg-data", "sql-one", "a", rule("1.1.1.1"))
    ops.create_or_update("rg-data", "sql-one", "a", rule("1.1.1.2"))
    ops.delete("rg-data", "sql-one", "office")
    history = emulator.state.rules_over_time(emulator.state.servers[next(iter(emulator.state.servers))].id)
    names = [sorted(r.name for r in rules) for rules in history]
    assert names == [
        ["AllowAllWindowsAzureIps", "office"],
        ["AllowAllWindowsAzureIps", "a", "office"],
        ["AllowAllWindowsAzureIps", "a", "office"],
        ["AllowAllWindowsAzureIps", "a"],
    ]
    assert [r.end for r in history[2] if r.name == "a"] == ["1.1.1.2"]


def test_include_slots_lists_slots_across_pages(emulator: Emulator) -> None:
    listed = list(web(emulator).web_apps.list_by_resource_group("rg-web", include_slots=True))
    assert [s.name for s in listed] == ["web-a", "web-a/staging", "web-b"]
    pages = [r for r in emulator.requests if r.path.endswith("/rg-web/providers/Microsoft.Web/sites")]
    assert len(pages) == 2 and "includeSlots=true" in pages[1].query  # the nextLink keeps the filter


def test_each_server_list_holds_only_its_own_type(estate: dict[str, Any]) -> None:
    from allowlist.emulator import build_estate

    estate["postgresql_servers"] = [{"subscription": SUB1, "resource_group": "rg-data", "name": "pg-one"}]
    loaded = build_estate(estate)
    with Emulator(loaded.state) as emu:
        assert [s.name for s in sql(emu).servers.list()] == ["sql-one"]


def test_resource_graph_answers_the_real_client_as_allowlist_reads_them(
    emulator: Emulator, clients: ArmClients
) -> None:
    """allowlist sends its queries raw; the real azure-mgmt-resourcegraph client must read the same rows."""
    from azure.mgmt.resourcegraph import ResourceGraphClient
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    from allowlist.sources.resourcegraph import SITES, query

    client = ResourceGraphClient(StaticCred(), **sdk_options(emulator))
    rows, token = [], None
    while True:
        options = QueryRequestOptions(top=2, skip_token=token, result_format="objectArray")
        page = client.resources(QueryRequest(subscriptions=[SUB1, SUB2], query=SITES, options=options))
        rows += page.data
        token = page.skip_token
        if not token:
            break
    ours = list(query(clients, SITES, [SUB1, SUB2]))
    assert len(rows) > 2 and rows == ours
