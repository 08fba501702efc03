"""The emulator's answers have the keys and structure of the official ARM examples in ../shared/arm-examples.

The examples are read from where they live (never copied into the project); without that folder the
tests skip and say why. Extra keys we emit must be ones the REST spec defines but the example omits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from allowlist.emulator import Emulator
from tests.conftest import SUB1

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "arm-examples"
pytestmark = pytest.mark.skipif(
    not EXAMPLES.is_dir(),
    reason=f"official ARM examples not found at {EXAMPLES} (shared/ is beside the repo in dev and CI)",
)

# Keys the REST spec defines that these particular examples happen to leave out.
SPEC_EXTRAS = {
    "tags", "vnetRouteAllEnabled", "sku", "workloadProfileName", "resourceConfig", "managedIdentityTraffic",
    "publicNetworkAccess",
}  # fmt: skip
# Maps whose keys are data (tag names), not schema.
FREE_FORM = {"tags"}
# Keys whose value may legitimately be null in our answer, whatever type the example shows.
NULLABLE = {"workloadProfileName"}


def example(name: str, status: str = "200") -> Any:
    return json.loads((EXAMPLES / name).read_text())["responses"][status].get("body")


def shape_problems(ours: Any, theirs: Any, path: str = "$") -> list[str]:
    """Every key of theirs must be in ours with the same JSON type, recursively; lists by first item."""
    problems: list[str] = []
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{path}: expected an object"]
        for key, value in theirs.items():
            if key not in ours:
                problems.append(f"{path}.{key}: missing")
            elif key in FREE_FORM:
                problems += [] if isinstance(ours[key], dict) else [f"{path}.{key}: expected an object"]
            elif not (ours[key] is None and key in NULLABLE):
                problems += shape_problems(ours[key], value, f"{path}.{key}")
        problems += [
            f"{path}.{key}: not in the example" for key in ours if key not in theirs and key not in SPEC_EXTRAS
        ]
    elif isinstance(theirs, list):
        if not isinstance(ours, list):
            return [f"{path}: expected a list"]
        if theirs and ours:
            problems += shape_problems(ours[0], theirs[0], f"{path}[0]")
    elif isinstance(theirs, bool) or isinstance(ours, bool):
        if type(theirs) is not type(ours):
            problems.append(f"{path}: expected {type(theirs).__name__}")
    elif isinstance(theirs, (int, float)):
        if not isinstance(ours, (int, float)):
            problems.append(f"{path}: expected a number")
    elif isinstance(theirs, str) and not isinstance(ours, str):
        problems.append(f"{path}: expected a string")
    return problems


def get(emu: Emulator, method: str, path: str, api: str, body: Any = None) -> requests.Response:
    return requests.request(
        method,
        f"{emu.base_url}{path}?api-version={api}",
        json=body,
        headers={"Authorization": "Bearer t"},
        verify=str(emu.ca_path),
        timeout=5,
    )


SERVER = f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-one"
SITE = f"/subscriptions/{SUB1}/resourceGroups/rg-web/providers/Microsoft.Web/sites/web-a"


@pytest.mark.parametrize(
    ("example_file", "method", "path", "api", "status", "request_body"),
    [
        ("subscriptions/GetSubscriptions.json", "GET", "/subscriptions", "2022-12-01", "200", None),
        ("subscriptions/GetSubscription.json", "GET", f"/subscriptions/{SUB1}", "2022-12-01", "200", None),
        (
            "web/ListWebApps.json",
            "GET",
            f"/subscriptions/{SUB1}/providers/Microsoft.Web/sites",
            "2025-05-01",
            "200",
            None,
        ),
        (
            "web/ListWebAppsByResourceGroup.json",
            "GET",
            f"/subscriptions/{SUB1}/resourceGroups/rg-web/providers/Microsoft.Web/sites",
            "2025-05-01",
            "200",
            None,
        ),
        ("web/GetWebApp.json", "GET", SITE, "2025-05-01", "200", None),
        ("web/ListWebAppSlots.json", "GET", f"{SITE}/slots", "2025-05-01", "200", None),
        ("web/GetWebAppSlot.json", "GET", f"{SITE}/slots/staging", "2025-05-01", "200", None),
        (
            "sql/ServerList.json",
            "GET",
            f"/subscriptions/{SUB1}/providers/Microsoft.Sql/servers",
            "2025-01-01",
            "200",
            None,
        ),
        ("sql/FirewallRuleList.json", "GET", f"{SERVER}/firewallRules", "2025-01-01", "200", None),
        ("sql/FirewallRuleGet.json", "GET", f"{SERVER}/firewallRules/office", "2025-01-01", "200", None),
        (
            "sql/FirewallRuleCreate.json",
            "PUT",
            f"{SERVER}/firewallRules/new-rule",
            "2025-01-01",
            "201",
            {"properties": {"startIpAddress": "0.0.0.3", "endIpAddress": "0.0.0.3"}},
        ),
        (
            "sql/FirewallRuleUpdate.json",
            "PUT",
            f"{SERVER}/firewallRules/office",
            "2025-01-01",
            "200",
            {"properties": {"startIpAddress": "198.51.100.0", "endIpAddress": "198.51.100.9"}},
        ),
        (
            "sql/FirewallRuleReplace.json",
            "PUT",
            f"{SERVER}/firewallRules",
            "2025-01-01",
            "200",
            {"values": [{"name": "only", "properties": {"startIpAddress": "0.0.0.3", "endIpAddress": "0.0.0.3"}}]},
        ),
    ],
)
def test_answers_match_the_official_example(
    emulator: Emulator,
    example_file: str,
    method: str,
    path: str,
    api: str,
    status: str,
    request_body: Any,
) -> None:
    answer = get(emulator, method, path, api, request_body)
    assert str(answer.status_code) == status, answer.text
    ours, theirs = answer.json(), example(example_file, status)
    if isinstance(theirs, dict) and "value" in theirs:  # paged lists: compare items; nextLink is ours to add
        theirs = {k: v for k, v in theirs.items() if k != "nextLink"}
        ours = {k: v for k, v in ours.items() if k != "nextLink"}
    assert shape_problems(ours, theirs) == []


@pytest.mark.parametrize(("status", "path"), [("200", "office"), ("204", "never-existed")])
def test_delete_answers_have_no_body(emulator: Emulator, status: str, path: str) -> None:
    assert example("sql/FirewallRuleDelete.json", status) is None
    answer = get(emulator, "DELETE", f"{SERVER}/firewallRules/{path}", "2025-01-01")
    assert str(answer.status_code) == status and answer.content in (b"", b"null")


def test_next_link_is_absolute_on_the_emulators_own_host(emulator: Emulator) -> None:
    body = get(emulator, "GET", f"/subscriptions/{SUB1}/providers/Microsoft.Web/sites", "2025-05-01").json()
    assert body["nextLink"].startswith(f"{emulator.base_url}/subscriptions/{SUB1}/providers/Microsoft.Web/sites?")


def test_the_shape_check_itself_catches_drift() -> None:
    theirs = {"id": "x", "properties": {"startIpAddress": "1.2.3.4", "flag": True}}
    assert shape_problems({"id": "x", "properties": {"startIpAddress": "1.2.3.4", "flag": True}}, theirs) == []
    assert shape_problems({"id": "x", "properties": {"flag": "yes"}}, theirs) == [
        "$.properties.startIpAddress: missing",
        "$.properties.flag: expected bool",
    ]
    assert shape_problems({"id": "x", "invented": 1, "properties": theirs["properties"]}, theirs) == [
        "$.invented: not in the example"
    ]


# --- PostgreSQL / MySQL flexible servers, Cosmos DB and Storage accounts ---

PG = f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-one"
MY = f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/Microsoft.DBforMySQL/flexibleServers/my-one"
COSMOS = f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/Microsoft.DocumentDB/databaseAccounts/cos-one"
STORAGE = f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/st-one"
NEW_RULE = {"properties": {"startIpAddress": "20.0.0.1", "endIpAddress": "20.0.0.2"}}


@pytest.fixture
def estate() -> dict[str, Any]:
    from tests.test_backends import backend_estate

    return backend_estate()


def pick(body: Any, top: set[str], props: set[str]) -> Any:
    """The fields allowlist relies on, from a resource whose example carries many it does not."""
    out = {k: v for k, v in body.items() if k in top}
    out["properties"] = {k: v for k, v in body["properties"].items() if k in props}
    return out


@pytest.mark.parametrize(
    ("example_file", "path"),
    [
        ("postgresql/FirewallRuleListByServer.json", f"{PG}/firewallRules"),
        ("mysql/FirewallRulesListByServer.json", f"{MY}/firewallRules"),
    ],
)
def test_flexible_rule_lists_match(emulator: Emulator, example_file: str, path: str) -> None:
    api = "2026-10-01" if "postgresql" in example_file else "2024-12-30"
    ours = get(emulator, "GET", path, api).json()
    theirs = {k: v for k, v in example(example_file).items() if k != "nextLink"}
    assert shape_problems({k: v for k, v in ours.items() if k != "nextLink"}, theirs) == []


@pytest.mark.parametrize(
    ("create", "delete", "server", "api"),
    [
        ("postgresql/FirewallRuleCreate.json", "postgresql/FirewallRuleDelete.json", PG, "2026-10-01"),
        ("mysql/FirewallRuleCreate.json", "mysql/FirewallRuleDelete.json", MY, "2024-12-30"),
    ],
)
def test_flexible_writes_are_long_running_as_in_the_examples(
    emulator: Emulator, create: str, delete: str, server: str, api: str
) -> None:
    started = get(emulator, "PUT", f"{server}/firewallRules/r1", api, NEW_RULE)
    assert started.status_code == 202 and started.content == b""
    delete_headers = json.loads((EXAMPLES / delete).read_text())["responses"]["202"]["headers"]
    assert set(delete_headers) <= set(started.headers)  # Azure-AsyncOperation and Location
    status_url = started.headers["Azure-AsyncOperation"]
    assert "/locations/westeurope/azureAsyncOperation/" in status_url and status_url.startswith(emulator.base_url)
    statuses = [requests.get(status_url, headers={"Authorization": "Bearer t"}, verify=str(emulator.ca_path),
                             timeout=5).json()["status"] for _ in range(2)]  # fmt: skip
    assert statuses == ["InProgress", "Succeeded"]
    final = requests.get(started.headers["Location"], headers={"Authorization": "Bearer t"},
                         verify=str(emulator.ca_path), timeout=5)  # fmt: skip
    assert shape_problems(final.json(), example(create, "200")) == []
    gone = get(emulator, "DELETE", f"{server}/firewallRules/never-existed", api)
    assert gone.status_code == 204


def test_operation_status_has_the_example_shape(emulator: Emulator) -> None:
    started = get(emulator, "PUT", f"{MY}/firewallRules/r1", "2024-12-30", NEW_RULE)
    for _ in range(2):  # the example is a finished operation: poll until this one is too
        status = requests.get(started.headers["Azure-AsyncOperation"], headers={"Authorization": "Bearer t"},
                              verify=str(emulator.ca_path), timeout=5).json()  # fmt: skip
    theirs = {k: v for k, v in example("mysql/OperationResults_Get.json").items() if k not in ("properties", "error")}
    assert shape_problems(status, theirs) == []


COSMOS_PROPS = {
    "ipRules",
    "isVirtualNetworkFilterEnabled",
    "virtualNetworkRules",
    "networkAclBypass",
    "provisioningState",
}
STORAGE_PROPS = {"networkAcls", "provisioningState", "primaryLocation", "statusOfPrimary", "supportsHttpsTrafficOnly"}
TOP = {"id", "name", "type", "kind", "location", "tags"}


def test_cosmos_account_and_patch_match(emulator: Emulator) -> None:
    ours = get(emulator, "GET", COSMOS, "2026-03-15").json()
    theirs = example("cosmosdb/CosmosDBDatabaseAccountGet.json")
    theirs["properties"]["ipRules"] = [{"ipAddressOrRange": "23.43.230.120"}]  # the GET example's list is empty
    assert shape_problems(pick(ours, TOP, COSMOS_PROPS), pick(theirs, TOP, COSMOS_PROPS)) == []
    request = json.loads((EXAMPLES / "cosmosdb/CosmosDBDatabaseAccountPatch.json").read_text())["parameters"]
    body = {"properties": {"ipRules": request["updateParameters"]["properties"]["ipRules"]}, "tags": {"dept": "x"}}
    patched = get(emulator, "PATCH", COSMOS, "2026-03-15", body)
    assert patched.status_code == 200
    assert [r["ipAddressOrRange"] for r in patched.json()["properties"]["ipRules"]] == [
        "23.43.230.120",
        "110.12.240.0/12",
    ]


def test_storage_account_and_patch_match(emulator: Emulator) -> None:
    ours = get(emulator, "GET", STORAGE, "2026-09-01").json()
    theirs = example("storage/StorageAccountGetProperties.json")
    theirs["properties"]["networkAcls"]["ipRules"] = [{"value": "23.45.67.89", "action": "Allow"}]
    assert shape_problems(pick(ours, TOP | {"sku"}, STORAGE_PROPS), pick(theirs, TOP | {"sku"}, STORAGE_PROPS)) == []
    acls = {"defaultAction": "Deny", "ipRules": [{"value": "20.0.0.0/31"}]}
    refused = get(emulator, "PATCH", STORAGE, "2026-09-01", {"properties": {"networkAcls": acls}})
    assert refused.status_code == 400 and "/31 and /32" in refused.json()["error"]["message"]


# --- What egress resolution reads: Microsoft.Network and App Service Environments ---

NET = f"/subscriptions/{SUB1}/resourceGroups/rg-net/providers/Microsoft.Network"
ASE = f"/subscriptions/{SUB1}/resourceGroups/rg-net/providers/Microsoft.Web/hostingEnvironments/ase-one"
# Keys the REST spec defines for these resources that the examples leave out.
NETWORK_EXTRAS = {"type", "natGateway", "routeTable", "serviceEndpoints", "ipAddress", "nextHopIpAddress"}
# Optional parts these examples happen to show (a DDoS plan, a NIC, firewall add-ons and rule collections).
NETWORK_OPTIONAL = {"ddosSettings", "ipConfiguration", "aiSecurityAddOn", "autoscaleConfiguration", "zones", "subnet"}


def network_estate() -> dict[str, Any]:
    from tests.conftest import base_estate

    estate = base_estate()
    estate["subnets"] = [
        {
            "id": f"{NET}/virtualNetworks/vnet/subnets/apps",
            "nat_gateway": f"{NET}/natGateways/nat",
            "route_table": f"{NET}/routeTables/rt",
            "service_endpoints": ["Microsoft.Sql"],
        }
    ]
    estate["nat_gateways"] = [
        {
            "id": f"{NET}/natGateways/nat",
            "public_ips": [f"{NET}/publicIPAddresses/pip"],
            "public_ip_prefixes": [f"{NET}/publicIPPrefixes/pre"],
        }
    ]
    estate["public_ips"] = [{"id": f"{NET}/publicIPAddresses/pip", "ip_address": "20.9.9.9"}]
    estate["public_ip_prefixes"] = [{"id": f"{NET}/publicIPPrefixes/pre", "ip_prefix": "20.9.8.0/30"}]
    estate["route_tables"] = [
        {
            "id": f"{NET}/routeTables/rt",
            "routes": [
                {
                    "name": "default",
                    "address_prefix": "0.0.0.0/0",
                    "next_hop_type": "VirtualAppliance",
                    "next_hop_ip": "10.0.0.4",
                }
            ],
        }
    ]
    estate["azure_firewalls"] = [
        {"id": f"{NET}/azureFirewalls/fw", "private_ip": "10.0.0.4", "public_ips": [f"{NET}/publicIPAddresses/pip"]}
    ]
    estate["app_service_environments"] = [
        {
            "id": ASE,
            "subnet": f"{NET}/virtualNetworks/vnet/subnets/apps",
            "windows_outbound": ["20.7.7.7"],
            "linux_outbound": ["20.7.7.8"],
        }
    ]
    return estate  # fmt: skip


@pytest.mark.parametrize(
    ("example_file", "path", "api"),
    [
        ("network/SubnetGet.json", f"{NET}/virtualNetworks/vnet/subnets/apps", "2024-05-01"),
        ("network/NatGatewayGet.json", f"{NET}/natGateways/nat", "2024-05-01"),
        ("network/PublicIpAddressGet.json", f"{NET}/publicIPAddresses/pip", "2024-05-01"),
        ("network/PublicIpPrefixGet.json", f"{NET}/publicIPPrefixes/pre", "2024-05-01"),
        ("network/RouteTableGet.json", f"{NET}/routeTables/rt", "2024-05-01"),
        ("network/AzureFirewallGet.json", f"{NET}/azureFirewalls/fw", "2024-05-01"),
        (
            "web/AppServiceEnvironments_GetAseV3NetworkingConfiguration.json",
            f"{ASE}/configurations/networking",
            "2025-05-01",
        ),
    ],
)
def test_network_answers_match_the_official_example(example_file: str, path: str, api: str) -> None:
    from allowlist.emulator import build_estate

    loaded = build_estate(network_estate())
    with Emulator(loaded.state) as emu:
        answer = get(emu, "GET", path, api)
    assert answer.status_code == 200, answer.text
    problems = shape_problems(answer.json(), example(example_file))
    problems = [p for p in problems if not any(p.endswith(f".{k}: not in the example") for k in NETWORK_EXTRAS)]
    assert [p for p in problems if not any(p.endswith(f".{k}: missing") for k in NETWORK_OPTIONAL)] == []


def test_resource_graph_answers_match_the_official_example(emulator: Emulator) -> None:
    query = (
        "Resources | where type in~ ('microsoft.web/sites') | project id, name, type, location, tags | order by id asc"
    )
    answer = requests.post(
        f"{emulator.base_url}/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01",
        json={"subscriptions": [SUB1], "query": query, "options": {"$top": 2}},
        headers={"Authorization": "Bearer t"},
        verify=str(emulator.ca_path),
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    ours, theirs = answer.json(), example("resourcegraph/ResourcesBasicQuery.json")
    assert ours["data"][0]["type"] == "microsoft.web/sites" and ours["totalRecords"] == 3 and ours["count"] == 2
    assert "$skipToken" in ours  # a next page: the third site
    assert shape_problems({k: v for k, v in ours.items() if k != "$skipToken"}, theirs) == []


@pytest.mark.parametrize(
    ("example_file", "method", "suffix", "status", "body"),
    [
        ("redis/RedisCacheFirewallRulesList.json", "GET", "", "200", None),
        ("redis/RedisCacheFirewallRuleGet.json", "GET", "/office", "200", None),
        (
            "redis/RedisCacheFirewallRuleCreate.json",
            "PUT",
            "/rule_1",
            "201",
            {"properties": {"startIP": "20.0.0.1", "endIP": "20.0.0.4"}},
        ),
    ],
)
def test_redis_answers_match_the_official_example(
    emulator: Emulator, example_file: str, method: str, suffix: str, status: str, body: Any
) -> None:
    path = f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/Microsoft.Cache/redis/cache-one/firewallRules"
    answer = get(emulator, method, path + suffix, "2024-11-01", body)
    assert str(answer.status_code) == status, answer.text
    assert shape_problems(answer.json(), example(example_file, status)) == []


def test_resource_graph_pages_come_from_one_snapshot(emulator: Emulator) -> None:
    """A site created between two pages neither shifts the next page nor appears in it, as in the service."""
    from dataclasses import replace

    query = "Resources | where type in~ ('microsoft.web/sites') | project id | order by id asc"

    def ask(options: dict[str, Any]) -> dict[str, Any]:
        answer = requests.post(
            f"{emulator.base_url}/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01",
            json={"subscriptions": [SUB1], "query": query, "options": options},
            headers={"Authorization": "Bearer t"},
            verify=str(emulator.ca_path),
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    first = ask({"$top": 2})
    existing = next(s for s in emulator.state.sites.values() if s.subscription_id.lower() == SUB1.lower())
    emulator.state.add_site(replace(existing, name="aaa-created-meanwhile", slots={}))
    second = ask({"$top": 2, "$skipToken": first["$skipToken"]})
    ids = [r["id"] for r in first["data"] + second["data"]]
    assert len(ids) == 3 == second["totalRecords"] and ids == sorted(ids, key=str.lower)
    assert not any("aaa-created-meanwhile" in i for i in ids)
    assert ask({"$top": 5})["totalRecords"] == 4  # a new query sees it


def _resources(emu: Emulator, query: str) -> requests.Response:
    return requests.get(f"{emu.base_url}/subscriptions/{SUB1}/resources?{query}&api-version=2021-04-01",
                        headers={"Authorization": "Bearer t"}, verify=str(emu.ca_path), timeout=5)  # fmt: skip


def test_the_resource_list_indexes_sites_without_their_properties(emulator: Emulator) -> None:
    """ARM's Resources - List, filtered to sites: each item as a site list gives it, less its properties."""
    listed, url = [], f"{emulator.base_url}/subscriptions/{SUB1}/providers/Microsoft.Web/sites?api-version=2025-05-01"
    while url:
        page = requests.get(url, headers={"Authorization": "Bearer t"}, verify=str(emulator.ca_path), timeout=5).json()
        listed += page["value"]
        url = page.get("nextLink")
    index, url = [], None
    answer = _resources(emulator, "$filter=resourceType%20eq%20'Microsoft.Web/sites'")
    while True:
        assert answer.status_code == 200
        index += answer.json()["value"]
        url = answer.json().get("nextLink")
        if not url:
            break
        answer = requests.get(url, headers={"Authorization": "Bearer t"}, verify=str(emulator.ca_path), timeout=5)
    assert len(index) == len(listed) > 2  # more than a page
    assert index == [{k: site[k] for k in ("id", "name", "type", "kind", "location", "tags")} for site in listed]


@pytest.mark.parametrize(
    "query", ["", "$filter=resourceType%20eq%20'Microsoft.Sql/servers'", "$filter=name%20eq%20'x'"]
)
def test_the_resource_list_refuses_what_it_cannot_answer(emulator: Emulator, query: str) -> None:
    answer = _resources(emulator, query)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidFilterInQueryString"
