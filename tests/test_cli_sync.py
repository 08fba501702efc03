"""plan / apply end to end: the CLI, the real SDK, real HTTPS, the emulator's real state."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from allowlist.emulator import Emulator, FaultConfig
from allowlist.emulator.faults import Bucket
from allowlist.emulator.state import FirewallRule
from tests.cli_helpers import cli, rules, write_config, writes
from tests.conftest import SQL1, SQL2, SUB1, SUB2

Cap = pytest.CaptureFixture[str]
ALL_APPS = [{"name": "one", "targets": [SQL1], "subscriptions": [SUB1]}]


def server(emu: Emulator, server_id: str = SQL1):  # type: ignore[no-untyped-def]
    return emu.state.servers[server_id.lower()]


def test_first_sync_then_an_idempotent_second_run(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    first = cli(capsys, "apply", "--yes", "-c", str(config))
    assert first.code == 0, first.err
    assert "Plan: 3 to add, 0 to remove." in first.out
    assert rules(cli_env, SQL1) == {
        "AllowAllWindowsAzureIps": ("0.0.0.0", "0.0.0.0"),
        "office": ("198.51.100.0", "198.51.100.255"),
        "allowlist-20.0.0.1-20.0.0.3": ("20.0.0.1", "20.0.0.3"),
        "allowlist-30.0.0.1": ("30.0.0.1", "30.0.0.1"),
        "allowlist-40.0.0.9": ("40.0.0.9", "40.0.0.9"),
    }
    cli_env.reset_log()
    second = cli(capsys, "apply", "--yes", "-c", str(config))
    assert second.code == 0 and "No changes." in second.out
    assert writes(cli_env) == []


def test_reads_are_one_paged_list_per_subscription_and_target(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    assert cli(capsys, "plan", "-c", str(config)).code == 0
    paths = [r.path for r in cli_env.requests]
    # The subscription's site index: ID, kind, location and tags of each site, no properties.
    index = [r for r in cli_env.requests if r.path == f"/subscriptions/{SUB1}/resources"]
    assert len(index) == 2  # page size 2: 3 sites
    assert all(parse_qs(r.query)["$filter"] == ["resourceType eq 'Microsoft.Web/sites'"] for r in index)
    assert not any(p.count("/") == 8 and "/sites/" in p for p in paths), "never one GET per app"
    assert not any("/slots" in p for p in paths), "no slot list per site"
    # Each site's payload is read once, from one includeSlots list per resource group holding sites in scope:
    # rg-web and rg-func; never from a subscription-wide site list as well.
    assert f"/subscriptions/{SUB1}/providers/Microsoft.Web/sites" not in paths
    site_lists = [r for r in cli_env.requests if r.path.endswith("/providers/Microsoft.Web/sites")]
    assert all("includeSlots=true" in r.query for r in site_lists)
    assert sorted(r.path.split("/")[4] for r in site_lists) == ["rg-func", "rg-web", "rg-web"]  # rg-web: 2 pages
    assert sum(p.endswith("/firewallRules") for p in paths) == 1
    assert writes(cli_env) == []  # plan writes nothing


def test_without_slots_the_group_lists_leave_them_out(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    both = write_config(tmp_path / "both.toml", [{"name": "a", "targets": [SQL1], "subscriptions": [SUB1],
                                                  "resource_groups": ["rg-web"], "slots": True},
                                                 {"name": "b", "targets": [SQL1], "subscriptions": [SUB1],
                                                  "resource_groups": ["rg-func"], "slots": False}])  # fmt: skip
    result = cli(capsys, "ips", "-c", str(both), "-o", "json")
    assert result.code == 0, result.err
    names = {a["name"] for a in json.loads(result.out)["apps"]}
    assert any("/" in n for n in names) and all("/" not in n for n in names if n.startswith("func"))
    lists = {r.path.split("/")[4]: r.query for r in cli_env.requests if r.path.endswith("/Microsoft.Web/sites")}
    assert "includeSlots=true" in lists["rg-web"] and "includeSlots" not in lists["rg-func"]
    assert set(lists) == {"rg-web", "rg-func"}  # only the groups in scope


def test_tier_change_adds_new_addresses_before_removing_stale_ones(
    cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    config = write_config(tmp_path / "allowlist.toml", [{"name": "a", "targets": [SQL1], "names": ["web-b"]}])
    assert cli(capsys, "apply", "--yes", "-c", str(config)).code == 0
    site = next(s for s in cli_env.state.sites.values() if s.name == "web-b")
    old = {"20.0.0.2", "20.0.0.3", "40.0.0.9"}
    site.possible_outbound_ip_addresses = "20.0.0.3,70.0.0.1,70.0.0.2"  # moved to another pricing tier
    new = {"20.0.0.3", "70.0.0.1", "70.0.0.2"}
    events_before = len(cli_env.state.timeline)
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 0, result.err
    assert set(rules(cli_env, SQL1)) == {
        "AllowAllWindowsAzureIps",
        "office",
        "allowlist-20.0.0.3",
        "allowlist-70.0.0.1-70.0.0.2",
    }
    events = [e for e in cli_env.state.timeline[events_before:]]
    assert [e.op for e in events] == ["create", "create", "delete", "delete"]
    # Replay every firewall state: the addresses both tiers use were never missing, and the old
    # ones went only once every new one was open.
    history = cli_env.state.rules_over_time(SQL1)[events_before:]
    covered = [{a for r in state for a in _addresses(r)} for state in history]
    assert all((old & new) <= c for c in covered)
    assert all(old <= c for c in covered[:3])  # nothing old went before both creates were done
    assert new | old <= covered[2]
    assert new <= covered[-1] and not (old - new) & covered[-1]


def _addresses(rule: FirewallRule) -> set[str]:
    import ipaddress

    first, last = int(ipaddress.IPv4Address(rule.start)), int(ipaddress.IPv4Address(rule.end))
    return {str(ipaddress.IPv4Address(n)) for n in range(first, min(last, first + 300) + 1)}


def test_peoples_rules_and_allow_azure_are_never_touched(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    server(cli_env).rules["allowlist-5.5.5.5"] = FirewallRule("allowlist-5.5.5.5", "5.5.5.5", "5.5.5.5")
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 0
    assert "left alone: AllowAllWindowsAzureIps, office" in result.out
    touched = {e.name for e in cli_env.state.timeline}
    assert "office" not in touched and "AllowAllWindowsAzureIps" not in touched
    assert "allowlist-5.5.5.5" in touched and "allowlist-5.5.5.5" not in rules(cli_env, SQL1)


def test_slots_are_included_and_can_be_left_out(cli_env: Emulator, capsys: Cap) -> None:
    slot = next(s for s in cli_env.state.sites.values() if s.name == "web-a").slots["staging"]
    slot.possible_outbound_ip_addresses = "20.0.0.1,80.0.0.1"
    with_slots = cli(capsys, "plan", "-t", SQL1, "-n", "web-a")
    assert "allowlist-80.0.0.1" in with_slots.out and "web-a/staging" in with_slots.out
    without = cli(capsys, "plan", "-t", SQL1, "-n", "web-a", "--no-slots")
    assert "allowlist-80.0.0.1" not in without.out


def test_several_subscriptions_and_targets(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(
        tmp_path / "allowlist.toml",
        [{"name": "all", "targets": [SQL1, SQL2], "tags": {"team": "a"}}],
    )
    result = cli(capsys, "apply", "--yes", "-c", str(config), "-o", "json")
    assert result.code == 0, result.err
    expected = {"allowlist-20.0.0.1-20.0.0.3", "allowlist-40.0.0.9", "allowlist-50.0.0.1-50.0.0.2"}
    assert expected <= set(rules(cli_env, SQL1)) and expected == set(rules(cli_env, SQL2))
    assert result.json()["result"]["summary"] == {"create": 6, "delete": 0}


@pytest.mark.parametrize("denied", ["resources", "providers/Microsoft.Web"])  # the site index, or sites anywhere
def test_403_on_one_subscription_means_no_deletes_and_a_non_zero_exit(
    cli_env: Emulator, tmp_path: Path, capsys: Cap, denied: str
) -> None:
    server(cli_env).rules["allowlist-5.5.5.5"] = FirewallRule("allowlist-5.5.5.5", "5.5.5.5", "5.5.5.5")
    cli_env.faults.config = FaultConfig(forbid=(f"/subscriptions/{SUB2}/{denied}",))
    config = write_config(tmp_path / "allowlist.toml", [{"name": "all", "targets": [SQL1]}])
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 1
    assert "403 AuthorizationFailed" in result.err and "could not finish the job" in result.err
    assert "delete withheld" in result.out
    assert "allowlist-5.5.5.5" in rules(cli_env, SQL1)  # kept: the forbidden subscription might need it
    assert all(method == "PUT" for method, _ in writes(cli_env))  # creates are safe and still happen


def test_a_group_spelt_two_ways_is_listed_once(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    """ARM can spell one resource group's name differently in the IDs of its resources."""
    site = next(s for s in cli_env.state.sites.values() if s.name == "web-b")
    site.overrides = {"id": site.id.replace("/resourceGroups/rg-web/", "/resourceGroups/RG-WEB/")}
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    names = [a["name"] for a in cli(capsys, "ips", "-c", str(config), "-o", "json").json()["apps"]]
    assert names == ["func-c", "web-a", "web-a/staging", "web-b"]
    lists = [r.path.split("/")[4].lower() for r in cli_env.requests if r.path.endswith("/Microsoft.Web/sites")]
    assert sorted(lists) == ["rg-func", "rg-web", "rg-web"]  # rg-web: two pages of one list


def test_a_resource_group_whose_sites_cannot_be_listed_keeps_their_rules(
    cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    """The group's sites are then unknown (not merely its slots): every target its blocks may feed withholds
    deletes, or its apps' rules would read as stale and go."""
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    assert cli(capsys, "apply", "--yes", "-c", str(config)).code == 0
    before = rules(cli_env, SQL1)
    assert "allowlist-20.0.0.1-20.0.0.3" in before  # web-a and web-b, both in rg-web
    cli_env.faults.config = FaultConfig(
        forbid=(f"/subscriptions/{SUB1}/resourceGroups/rg-web/providers/Microsoft.Web",)
    )
    cli_env.reset_log()
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 1 and "rg-web: sites could not be listed: 403 AuthorizationFailed" in result.out + result.err
    assert "delete withheld" in result.out
    assert rules(cli_env, SQL1) == before and writes(cli_env) == []


def test_unpinned_app_in_scope_withholds_deletes(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    site = next(s for s in cli_env.state.sites.values() if s.name == "func-c")
    site.possible_outbound_ip_addresses = ""
    site.sku = "PremiumV4"
    server(cli_env).rules["allowlist-30.0.0.1"] = FirewallRule("allowlist-30.0.0.1", "30.0.0.1", "30.0.0.1")
    result = cli(capsys, "apply", "--yes", "-t", SQL1, "-s", SUB1)
    assert result.code == 1 and "func-c" in result.err and "not pinned" in result.err
    assert "allowlist-30.0.0.1" in rules(cli_env, SQL1)


def test_rule_limit_exceeded_writes_nothing(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS, rule_limit=4)
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 1
    assert "would hold 5 firewall rules (2 not managed by allowlist), over the limit of 4" in result.err
    assert "nothing was written" in result.err and writes(cli_env) == []


def test_the_services_limit_error_is_recognised(estate: dict, tmp_path: Path, capsys: Cap, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from allowlist.emulator import build_estate

    estate["emulator"]["sql_rule_limit"] = 3  # the server allows fewer rules than the tool was told
    loaded = build_estate(estate)
    with Emulator(loaded.state, page_size=loaded.page_size) as emu:
        monkeypatch.setenv("ALLOWLIST_ARM_ENDPOINT", emu.base_url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_path))
        monkeypatch.setenv("ALLOWLIST_ACCESS_TOKEN", "t")
        result = cli(capsys, "apply", "--yes", "-t", SQL1, "-s", SUB1)
    assert result.code == 1
    assert "TooManyFirewallRules" in result.out and "its limit is lower than rule_limit = 128" in result.out


def test_delete_threshold_needs_force(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    for i in range(1, 11):
        name = f"allowlist-60.0.0.{i}"
        server(cli_env).rules[name] = FirewallRule(name, f"60.0.0.{i}", f"60.0.0.{i}")
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    refused = cli(capsys, "apply", "--yes", "-c", str(config))
    assert refused.code == 1 and "Too many deletes, 100% is over 30% (10/10), force required" in refused.err
    assert writes(cli_env) == []
    forced = cli(capsys, "apply", "--yes", "--force", "-c", str(config))
    assert forced.code == 0 and not any(n.startswith("allowlist-60.") for n in rules(cli_env, SQL1))


def test_a_429_storm_still_converges(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    cli_env.faults.config = FaultConfig(reads=Bucket(3, 20.0), writes=Bucket(1, 2.0))
    config = write_config(tmp_path / "allowlist.toml", [{"name": "all", "targets": [SQL1, SQL2]}])
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 0, result.err
    assert sum(r.status == 429 for r in cli_env.requests) >= 3
    cli_env.faults.config = FaultConfig()
    assert "No changes." in cli(capsys, "plan", "-c", str(config)).out


def test_a_stale_saved_plan_is_refused(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    saved = tmp_path / "plan.json"
    assert cli(capsys, "plan", "-c", str(config), "--out", str(saved)).code == 0
    server(cli_env).rules["someone"] = FirewallRule("someone", "7.7.7.7", "7.7.7.7")
    result = cli(capsys, "apply", str(saved))
    assert result.code == 1 and "stale" in result.err and "sql-one" in result.err
    assert writes(cli_env) == []


def test_a_fresh_saved_plan_applies_exactly(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    saved = tmp_path / "plan.json"
    assert cli(capsys, "plan", "-c", str(config), "--out", str(saved)).code == 0
    result = cli(capsys, "apply", str(saved))
    assert result.code == 0 and "Apply complete: 3 added" in result.out
    assert "No changes." in cli(capsys, "plan", "-c", str(config)).out


def test_detailed_exitcode(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    assert cli(capsys, "plan", "-c", str(config), "--detailed-exitcode").code == 2
    assert cli(capsys, "plan", "-c", str(config)).code == 0
    assert cli(capsys, "apply", "-y", "-c", str(config)).code == 0
    assert cli(capsys, "plan", "-c", str(config), "--detailed-exitcode").code == 0


def test_apply_asks_and_refuses_without_a_terminal(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    result = cli(capsys, "apply", "-c", str(config))
    assert result.code == 1 and "apply needs --yes" in result.err and writes(cli_env) == []


def test_a_missing_target_fails_alone(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    missing = SQL1.replace("sql-one", "sql-gone")
    config = write_config(tmp_path / "allowlist.toml", [{"name": "a", "targets": [SQL1, missing]}])
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 1 and "sql-gone: could not read firewall rules: 404 ResourceNotFound" in result.err
    assert "allowlist-30.0.0.1" in rules(cli_env, SQL1)


def test_json_and_markdown_plans(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", ALL_APPS)
    data = cli(capsys, "plan", "-c", str(config), "-o", "json").json()
    assert (data["format"], data["version"]) == ("allowlist-plan", 2)
    assert data["summary"] == {"add": 3, "remove": 0, "withheld": 0, "targets": 1, "apps": 4, "complete": True}
    (target,) = data["targets"]
    assert [c["name"] for c in target["changes"]] == [
        "allowlist-20.0.0.1-20.0.0.3",
        "allowlist-30.0.0.1",
        "allowlist-40.0.0.9",
    ]
    assert [u["name"] for u in target["unmanaged"]] == ["AllowAllWindowsAzureIps", "office"]
    markdown = cli(capsys, "plan", "-c", str(config), "-o", "markdown").out
    assert (
        markdown.startswith("## allowlist plan")
        and "| + | `allowlist-30.0.0.1` | 30.0.0.1 | 30.0.0.1 | 1 |" in markdown
    )


def test_plans_are_byte_identical_run_to_run(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(tmp_path / "allowlist.toml", [{"name": "all", "targets": [SQL1, SQL2]}])
    runs = [cli(capsys, "plan", "-c", str(config), "-o", "json", "--concurrency", str(n)).out for n in (1, 4, 8)]
    assert runs[0] == cli(capsys, "plan", "-c", str(config), "-o", "json", "--concurrency", "1").out
    without_settings = {r.replace(f'"concurrency": {n}', "") for r, n in zip(runs, (1, 4, 8), strict=True)}
    assert len(without_settings) == 1  # thread interleaving never reaches the plan


def test_ips_lists_apps_and_says_which_are_not_pinned(cli_env: Emulator, capsys: Cap) -> None:
    next(s for s in cli_env.state.sites.values() if s.name == "web-d").possible_outbound_ip_addresses = ""
    result = cli(capsys, "ips")
    assert result.code == 0
    assert "web-a/staging" in result.out and "20.0.0.1-20.0.0.2" in result.out
    assert "NOT PINNED: possibleOutboundIpAddresses is empty" in result.out
    data = cli(capsys, "ips", "-s", SUB1, "-o", "json").json()
    assert [a["name"] for a in data["apps"]] == ["func-c", "web-a", "web-a/staging", "web-b"]


@pytest.mark.parametrize("source", ["arm", "resource-graph"])
def test_a_slot_named_alone_is_found(cli_env: Emulator, tmp_path: Path, capsys: Cap, source: str) -> None:
    config = write_config(tmp_path / "allowlist.toml", [{"name": "s", "targets": [SQL1], "names": ["web-a/staging"]}])
    data = cli(capsys, "ips", "-c", str(config), "--source", source, "-o", "json").json()
    assert [a["name"] for a in data["apps"]] == ["web-a/staging"]


def test_a_rejected_token_is_an_auth_error(estate: dict, capsys: Cap, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from allowlist.emulator import build_estate

    loaded = build_estate(estate)
    with Emulator(loaded.state, accepted_tokens=frozenset({"the-right-one"})) as emu:
        monkeypatch.setenv("ALLOWLIST_ARM_ENDPOINT", emu.base_url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_path))
        monkeypatch.setenv("ALLOWLIST_ACCESS_TOKEN", "secret-pipeline-token")
        result = cli(capsys, "plan", "-t", SQL1)
    assert result.code == 1
    assert "authentication failed: 401 InvalidAuthenticationToken" in result.err


def test_fixed_addresses_are_planned_and_owned_like_app_ones(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = write_config(
        tmp_path / "allowlist.toml",
        [
            {"name": "apps", "targets": [SQL1], "subscriptions": [SUB1]},
            {"name": "vpn", "targets": [SQL1], "addresses": ["52.10.0.0/30", "30.0.0.2"], "label": "office VPN"},
        ],
    )
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 0, result.err
    assert "(static:office VPN)" in result.out  # its label, where apps are named
    held = rules(cli_env, SQL1)
    assert held["allowlist-52.10.0.0-52.10.0.3"] == ("52.10.0.0", "52.10.0.3")
    assert held["allowlist-30.0.0.1-30.0.0.2"] == ("30.0.0.1", "30.0.0.2")  # joined to func-c's 30.0.0.1
    # The fixed-address block selects no apps: no subscription list beyond the app block's one.
    assert not any(r.path == "/subscriptions" for r in cli_env.requests)
    config.write_text(config.read_text().replace('"52.10.0.0/30", ', ""))
    assert cli(capsys, "apply", "--yes", "-c", str(config)).code == 0
    assert "allowlist-52.10.0.0-52.10.0.3" not in rules(cli_env, SQL1)  # owned, so removed when dropped
