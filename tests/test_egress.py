"""Egress truth, end to end against the emulator: each app's addresses come from where its traffic really
leaves (platform, NAT gateway, Azure Firewall, App Service Environment, declared), each lookup is made
once, and every app says how its addresses were found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from allowlist.config import build_scope
from allowlist.emulator import Emulator
from allowlist.model import AppEgress, Egress
from allowlist.scope import Settings
from allowlist.sources.egress import Routing, decide
from tests.cli_helpers import cli, rules, write_config
from tests.conftest import SQL1, SUB1, base_estate, site
from tests.test_backends import STORAGE, backend_estate

Cap = pytest.CaptureFixture[str]
NET = f"/subscriptions/{SUB1}/resourceGroups/rg-net/providers/Microsoft.Network"
SUBNET = f"{NET}/virtualNetworks/vnet/subnets/apps"
ASE = f"/subscriptions/{SUB1}/resourceGroups/rg-net/providers/Microsoft.Web/hostingEnvironments/ase-one"
APP_ID = f"/subscriptions/{SUB1}/resourceGroups/rg-web/providers/Microsoft.Web/sites/app"


# --- the decision, pure ---------------------------------------------------------------------------


def platform_app(**kw: Any) -> AppEgress:
    return AppEgress(APP_ID, "app", SUB1, "rg-web", "app", "westeurope", ipv4=("20.0.0.1",), **kw)


def test_route_all_follows_the_subnet_and_never_guesses() -> None:
    routing = Routing(subnet=SUBNET, route_all="outboundVnetRouting.applicationTraffic")
    nat = Egress("nat-gateway", ("50.0.0.1",), (SUBNET, f"{NET}/natGateways/nat"))
    app = decide(platform_app(ipv6=("2603:1020::1",)), routing, Settings(), {SUBNET.lower(): nat})
    assert (app.pinned, app.mode, app.ipv4, app.chain[0]) == (True, "nat-gateway", ("50.0.0.1",), APP_ID)
    assert app.ipv6 == ()  # the platform's IPv6 addresses are not where NAT-routed traffic leaves from
    plain = decide(platform_app(), routing, Settings(), {SUBNET.lower(): Egress("platform", chain=(SUBNET,))})
    assert plain.pinned and plain.ipv4 == ("20.0.0.1",) and "leaves from its outbound addresses" in plain.warnings[-1]
    unknown = Egress("unknown", chain=(SUBNET,), reason="its subnet's route table rt sends 0.0.0.0/0 to ...")
    lost = decide(platform_app(), routing, Settings(), {SUBNET.lower(): unknown})
    assert not lost.pinned and lost.ipv4 == () and "route table rt" in lost.reason
    assert not decide(platform_app(), routing, Settings(), {}).pinned  # a lookup that never happened


def test_functions_plans_are_warned_and_a_setting_decides() -> None:
    for sku in ("Dynamic", "ElasticPremium", "WorkflowStandard"):
        warned = decide(platform_app(), Routing(sku=sku), Settings())
        assert warned.pinned and "not a definitive allowlist" in warned.warnings[-1]
        strict = decide(platform_app(), Routing(sku=sku), Settings(functions_pinned=False))
        assert not strict.pinned and "not a definitive allowlist" in strict.reason


def test_declared_egress_and_acknowledgements() -> None:
    scope = build_scope({
        "sync": [{"name": "a", "targets": [SQL1]}],
        "egress": [{"name": "palo-alto", "subnets": [SUBNET], "addresses": ["52.99.0.16/30"]}],
        "acknowledge": [{"names": ["app"], "reason": "goes through the partner VPN, reviewed 2026-11"}],
    })  # fmt: skip
    routing = Routing(subnet=SUBNET, route_all="outboundVnetRouting.allTraffic")
    declared = decide(platform_app(), routing, scope.settings, {}, None, scope.egress, scope.acknowledged)
    assert declared.mode == "declared" and declared.ipv4[0] == "52.99.0.16" and len(declared.ipv4) == 4
    flex = decide(platform_app(), Routing(sku="FlexConsumption"), scope.settings, {}, None, (), scope.acknowledged)
    assert not flex.pinned and flex.acknowledged.startswith("goes through the partner VPN")


# --- end to end -----------------------------------------------------------------------------------


def network(estate: dict[str, Any]) -> dict[str, Any]:
    estate["subnets"] = [
        {"id": SUBNET, "nat_gateway": f"{NET}/natGateways/nat"},
        {"id": f"{NET}/virtualNetworks/vnet/subnets/routed", "route_table": f"{NET}/routeTables/to-firewall"},
        {"id": f"{NET}/virtualNetworks/vnet/subnets/appliance", "route_table": f"{NET}/routeTables/to-nva"},
        {"id": f"{NET}/virtualNetworks/vnet/subnets/plain", "service_endpoints": ["Microsoft.Sql"]},
        {"id": f"{NET}/virtualNetworks/vnet/subnets/ase"},
    ]
    estate["nat_gateways"] = [{"id": f"{NET}/natGateways/nat", "public_ips": [f"{NET}/publicIPAddresses/nat-ip"],
                               "public_ip_prefixes": [f"{NET}/publicIPPrefixes/nat-prefix"]}]  # fmt: skip
    estate["public_ips"] = [
        {"id": f"{NET}/publicIPAddresses/nat-ip", "ip_address": "52.10.0.1"},
        {"id": f"{NET}/publicIPAddresses/fw-ip", "ip_address": "52.20.0.1"},
    ]
    estate["public_ip_prefixes"] = [{"id": f"{NET}/publicIPPrefixes/nat-prefix", "ip_prefix": "52.10.1.0/30"}]
    default = {"name": "default", "address_prefix": "0.0.0.0/0", "next_hop_type": "VirtualAppliance"}
    estate["route_tables"] = [
        {"id": f"{NET}/routeTables/to-firewall", "routes": [{**default, "next_hop_ip": "10.0.9.4"}]},
        {"id": f"{NET}/routeTables/to-nva", "routes": [{**default, "next_hop_ip": "10.0.9.99"}]},
    ]
    estate["azure_firewalls"] = [
        {
            "id": f"{NET}/azureFirewalls/hub-fw",
            "private_ip": "10.0.9.4",
            "public_ips": [f"{NET}/publicIPAddresses/fw-ip"],
        }
    ]
    estate["app_service_environments"] = [
        {"id": ASE, "subnet": f"{NET}/virtualNetworks/vnet/subnets/ase", "windows_outbound": ["52.30.0.1"],
         "linux_outbound": ["52.30.0.2"]}
    ]  # fmt: skip
    vnet = f"{NET}/virtualNetworks/vnet/subnets"
    estate["sites"] = [
        site(SUB1, "rg-web", "app-only", "20.0.0.1", application_traffic=True, virtual_network_subnet_id=SUBNET),
        site(SUB1, "rg-web", "all-nat", "20.0.0.2", all_traffic=True, virtual_network_subnet_id=SUBNET,
             slots=[{"name": "staging"}]),
        site(SUB1, "rg-web", "old-style", "20.0.0.3", site_config_vnet_route_all=True,
             virtual_network_subnet_id=SUBNET),
        site(SUB1, "rg-web", "perimeter", "20.0.0.4", public_network_access="SecuredByPerimeter",
             virtual_network_subnet_id=SUBNET),
        site(SUB1, "rg-web", "no-nat", "20.0.0.5", all_traffic=True, virtual_network_subnet_id=f"{vnet}/plain"),
        site(SUB1, "rg-web", "to-firewall", "20.0.0.6", all_traffic=True, virtual_network_subnet_id=f"{vnet}/routed"),
        site(SUB1, "rg-web", "to-nva", "20.0.0.7", all_traffic=True, virtual_network_subnet_id=f"{vnet}/appliance"),
        site(SUB1, "rg-web", "in-ase", "20.0.0.8", hosting_environment_id=ASE),
        site(SUB1, "rg-web", "in-ase-linux", "20.0.0.8", kind="app,linux", hosting_environment_id=ASE),
        site(SUB1, "rg-web", "consumption", "20.0.0.9", kind="functionapp", sku="Dynamic"),
        site(SUB1, "rg-web", "integrated", "20.0.0.10", virtual_network_subnet_id=SUBNET),  # not route-all
    ]  # fmt: skip
    return estate


@pytest.fixture
def estate() -> dict[str, Any]:
    return network(base_estate())


def explain(cli_env: Emulator, capsys: Cap) -> dict[str, Any]:
    result = cli(capsys, "ips", "--explain", "-o", "json", "-s", SUB1)
    return {a["name"]: a for a in result.json()["apps"]}


def test_each_mode_opens_where_the_app_really_leaves_from(cli_env: Emulator, capsys: Cap) -> None:
    apps = explain(cli_env, capsys)
    nat = ["52.10.0.1", "52.10.1.0", "52.10.1.1", "52.10.1.2", "52.10.1.3"]
    for name in ("app-only", "all-nat", "all-nat/staging", "old-style", "perimeter"):
        assert (apps[name]["mode"], apps[name]["ipv4"]) == ("nat-gateway", nat), name  # not the stamp's
    assert apps["app-only"]["chain"] == [
        apps["app-only"]["id"], SUBNET, f"{NET}/natGateways/nat", f"{NET}/publicIPAddresses/nat-ip",
        f"{NET}/publicIPPrefixes/nat-prefix",
    ]  # fmt: skip
    assert (apps["no-nat"]["mode"], apps["no-nat"]["ipv4"], apps["no-nat"]["pinned"]) == (
        "platform",
        ["20.0.0.5"],
        True,
    )
    assert apps["no-nat"]["service_endpoints"] == ["Microsoft.Sql"]
    assert (apps["to-firewall"]["mode"], apps["to-firewall"]["ipv4"]) == ("azure-firewall", ["52.20.0.1"])
    assert not apps["to-nva"]["pinned"] and "VirtualAppliance 10.0.9.99" in apps["to-nva"]["reason"]
    assert (apps["in-ase"]["mode"], apps["in-ase"]["ipv4"]) == ("ase", ["52.30.0.1"])
    assert apps["in-ase-linux"]["ipv4"] == ["52.30.0.2"]
    assert apps["consumption"]["pinned"] and "not a definitive allowlist" in apps["consumption"]["warnings"][-1]
    assert (apps["integrated"]["mode"], apps["integrated"]["ipv4"]) == ("platform", ["20.0.0.10"])


def test_each_network_resource_is_read_once(cli_env: Emulator, capsys: Cap) -> None:
    explain(cli_env, capsys)
    network_reads = [r.path for r in cli_env.requests if "/microsoft.network/" in r.path.lower()]
    assert len(network_reads) == len(set(network_reads)), "one lookup per distinct resource"
    assert sum("/natGateways/" in p for p in network_reads) == 1  # five apps and a slot share it
    assert not any(r.path.count("/") == 8 and "/sites/" in r.path for r in cli_env.requests), "no per-app GET"


def test_the_plan_opens_the_nat_not_the_stamp_and_warns_of_service_endpoints(
    cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    block = {"name": "one", "targets": [SQL1], "subscriptions": [SUB1], "names": ["app-only", "no-nat"]}
    config = write_config(tmp_path / "allowlist.toml", [block])
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 0, result.err
    held = rules(cli_env, SQL1)
    assert "allowlist-52.10.0.1" in held and "allowlist-52.10.1.0-52.10.1.3" in held
    assert "allowlist-20.0.0.1" not in held and "allowlist-20.0.0.5" in held
    assert "service endpoint for Microsoft.Sql" in result.out


def test_an_unknown_next_hop_fails_the_run_until_declared_or_acknowledged(
    cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    block = {"name": "one", "targets": [SQL1], "subscriptions": [SUB1], "names": ["to-nva", "app-only"]}
    config = write_config(tmp_path / "allowlist.toml", [block])
    stuck = cli(capsys, "plan", "-c", str(config))
    assert stuck.code == 1 and "VirtualAppliance 10.0.9.99" in stuck.err
    appliance = f"{NET}/virtualNetworks/vnet/subnets/appliance"
    declared = config.read_text() + f'[[egress]]\nname = "nva"\nsubnets = ["{appliance}"]\naddresses = ["52.99.0.40"]\n'
    config.write_text(declared)
    ok = cli(capsys, "plan", "-c", str(config))
    assert ok.code == 0 and "allowlist-52.99.0.40" in ok.out
    acknowledged = config.read_text().split("[[egress]]")[0]
    acknowledged += '[[acknowledge]]\nnames = ["to-nva"]\nreason = "partner VPN, reviewed"\n'
    config.write_text(acknowledged)
    result = cli(capsys, "plan", "-c", str(config))
    assert result.code == 0 and "partner VPN, reviewed" in result.out


def test_ips_explain_in_text(cli_env: Emulator, capsys: Cap) -> None:
    out = cli(capsys, "ips", "--explain", "-s", SUB1, "-n", "app-only").out
    assert "nat-gateway" in out and "natGateways/nat" in out and "publicIPPrefixes/nat-prefix" in out


def test_storage_service_endpoints_are_named(tmp_path: Path, capsys: Cap) -> None:
    from allowlist.emulator import build_estate

    estate = network(backend_estate())
    estate["subnets"][3]["service_endpoints"] = ["Microsoft.Storage"]
    loaded = build_estate(estate)
    with Emulator(loaded.state) as emu, pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALLOWLIST_ARM_ENDPOINT", emu.base_url)
        mp.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_path))
        mp.chdir(tmp_path)
        block = {"name": "one", "targets": [STORAGE], "subscriptions": [SUB1], "names": ["no-nat"]}
        config = write_config(tmp_path / "allowlist.toml", [block])
        assert "service endpoint for Microsoft.Storage" in cli(capsys, "plan", "-c", str(config)).out


def test_the_reader_role_covers_every_lookup(cli_env: Emulator, capsys: Cap) -> None:
    import json

    from tests.test_examples import EXAMPLES

    explain(cli_env, capsys)
    granted = {a.lower() for a in json.loads((EXAMPLES / "roles" / "allowlist-app-reader.json").read_text())["Actions"]}
    used = {r.action.lower() for r in cli_env.requests}
    assert "microsoft.network/natgateways/read" in used and "microsoft.web/hostingenvironments/read" in used
    assert used <= granted, sorted(used - granted)


# --- IPv6 end to end ------------------------------------------------------------------------------


def test_ipv6_is_written_where_the_back_end_holds_it(tmp_path: Path, capsys: Cap) -> None:
    from allowlist.emulator import build_estate
    from tests.test_backends import ALL

    estate = backend_estate()
    estate["sites"][0]["possible_outbound_ipv6_addresses"] = "2603:1020:206:3::1a,2603:1020:206:3::1b"
    loaded = build_estate(estate)
    with Emulator(loaded.state) as emu, pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALLOWLIST_ARM_ENDPOINT", emu.base_url)
        mp.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_path))
        mp.chdir(tmp_path)
        block = {"name": "all", "targets": [SQL1, *ALL.values()], "subscriptions": [SUB1]}
        config = write_config(tmp_path / "allowlist.toml", [block], poll_interval=0)
        assert cli(capsys, "apply", "--yes", "-c", str(config)).code == 0
        server = emu.state.servers[SQL1.lower()]
        v6 = {r.name: (r.start, r.end) for r in server.rules6.values()}
        name = "allowlist-v6-2603_1020_206_3__1a-2603_1020_206_3__1b"
        assert v6 == {name: ("2603:1020:206:3::1a", "2603:1020:206:3::1b")}
        storage = emu.state.accounts[STORAGE.lower()]
        assert "2603:1020:206:3::1a/127" in storage.ip_rules  # the fewest CIDRs, served as networkAcls.ipv6Rules
        cosmos = emu.state.accounts[ALL["cosmosdb"].lower()]
        assert not any(":" in e for e in cosmos.ip_rules)  # Cosmos DB rules are IPv4 only: reported, not written
        assert "No changes." in cli(capsys, "plan", "-c", str(config)).out  # idempotent, v6 included
        rendered = cli(capsys, "render", "-t", SQL1, "-s", SUB1, "--format", "terraform")
        assert rendered.code == 0 and f'"sql-one/{name}" = {{' in rendered.out  # azapi writes SQL's IPv6 rules
        refused = cli(capsys, "render", "-t", STORAGE, "-s", SUB1, "--format", "terraform")
        assert refused.code == 1 and "IPv6 rules for st-one cannot be written in this format yet" in refused.err
        inventory = cli(capsys, "render", "-c", str(config), "--format", "json").json()
        assert any(r["address"] == "2603:1020:206:3::1a" for r in inventory["inventory"])
        # A tier change that drops the IPv6 addresses removes the v6 rule too, and only that one.
        site_b = next(s for s in emu.state.sites.values() if s.name == "web-a")
        site_b.possible_outbound_ipv6_addresses = None
        for slot in site_b.slots.values():
            slot.possible_outbound_ipv6_addresses = None
        assert cli(capsys, "apply", "--yes", "-c", str(config)).code == 0
        assert server.rules6 == {} and not any(":" in e for e in storage.ip_rules)


# --- Resource Graph: the same plans from a few paged queries ------------------------------------------


def test_resource_graph_and_arm_lists_give_identical_plans(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    block = {"name": "one", "targets": [SQL1], "subscriptions": [SUB1]}
    config = str(write_config(tmp_path / "allowlist.toml", [block]))
    cli_env.reset_log()
    arm = cli(capsys, "plan", "-c", config, "-o", "json")
    arm_requests = len(cli_env.requests)
    cli_env.reset_log()
    graph = cli(capsys, "plan", "-c", config, "-o", "json", "--source", "resource-graph")
    assert arm.code == graph.code == 1  # to-nva is unknown either way
    assert graph.json() == arm.json()
    queries = [r for r in cli_env.requests if r.path == "/providers/Microsoft.ResourceGraph/resources"]
    assert len(queries) == 2  # one for sites and slots, one for the network
    assert not any("includeSlots" in r.query or r.path.endswith("/Microsoft.Web/sites") for r in cli_env.requests)
    assert len(cli_env.requests) < arm_requests


def test_resource_graph_pages_and_errors_are_clear(cli_env: Emulator, capsys: Cap) -> None:
    from allowlist.emulator import FaultConfig

    cli_env.faults.config = FaultConfig(forbid=("/providers/Microsoft.ResourceGraph",))
    result = cli(capsys, "plan", "-t", SQL1, "-s", SUB1, "--source", "resource-graph")
    assert result.code == 1 and "the site query failed: 403" in result.out
    bad = cli(capsys, "plan", "-t", SQL1, "--source", "graph")
    assert bad.code == 1 and "settings.source: must be 'arm'" in bad.err


def test_a_saved_plan_keeps_its_declared_egress_and_acknowledgements(
    cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    appliance = f"{NET}/virtualNetworks/vnet/subnets/appliance"
    block = {"name": "one", "targets": [SQL1], "subscriptions": [SUB1], "names": ["to-nva", "consumption", "app-only"]}
    config = write_config(tmp_path / "allowlist.toml", [block], functions_pinned=False)
    config.write_text(
        config.read_text()
        + f'[[egress]]\nname = "nva"\nsubnets = ["{appliance}"]\naddresses = ["52.99.0.40"]\n'
        + '[[acknowledge]]\nnames = ["consumption"]\nreason = "reviewed"\n'
    )
    assert cli(capsys, "plan", "-c", str(config), "--out", "plan.json").code == 0
    result = cli(capsys, "apply", "plan.json")
    assert result.code == 0, result.err
    assert "allowlist-52.99.0.40" in rules(cli_env, SQL1)  # rediscovered with the same [[egress]]
