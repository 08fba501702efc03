"""PostgreSQL and MySQL flexible servers, Cosmos DB and Storage accounts, end to end: the CLI, the real
SDKs (azure-mgmt-postgresqlflexibleservers, -mysqlflexibleservers, -cosmosdb, -storage) over HTTPS,
long-running operations polled to completion, the emulator's real state."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allowlist.emulator import Emulator, FaultConfig, build_estate
from tests.cli_helpers import cli, write_config, writes
from tests.conftest import SUB1, base_estate

Cap = pytest.CaptureFixture[str]
DATA = f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers"
PG = f"{DATA}/Microsoft.DBforPostgreSQL/flexibleServers/pg-one"
MY = f"{DATA}/Microsoft.DBforMySQL/flexibleServers/my-one"
COSMOS = f"{DATA}/Microsoft.DocumentDB/databaseAccounts/cos-one"
STORAGE = f"{DATA}/Microsoft.Storage/storageAccounts/st-one"
REDIS = f"{DATA}/Microsoft.Cache/redis/cache-one"
VAULT = f"{DATA}/Microsoft.KeyVault/vaults/kv-one"
API = f"/subscriptions/{SUB1}/resourceGroups/rg-web/providers/Microsoft.Web/sites/web-b"  # restricted to the apps
ALL = {"postgresql": PG, "mysql": MY, "cosmosdb": COSMOS, "storage": STORAGE, "redis": REDIS, "keyvault": VAULT,
       "webapp": API}  # fmt: skip
FOREIGN = {"postgresql": "office", "mysql": "office", "cosmosdb": "198.51.100.7", "storage": "198.51.100.7",
           "redis": "office", "keyvault": "198.51.100.7", "webapp": "office"}  # fmt: skip
# What the SUB1 apps need (web-a and its slot, web-b, func-c).
NEEDED = {"20.0.0.1", "20.0.0.2", "20.0.0.3", "30.0.0.1", "40.0.0.9"}


def backend_estate() -> dict[str, Any]:
    estate = base_estate()
    office = [{"name": "office", "start": "198.51.100.0", "end": "198.51.100.255"}]
    server = {"subscription": SUB1, "resource_group": "rg-data"}
    estate["postgresql_servers"] = [{**server, "name": "pg-one", "firewall_rules": office}]
    estate["mysql_servers"] = [{**server, "name": "my-one", "firewall_rules": office}]
    estate["redis_caches"] = [{**server, "name": "cache-one", "firewall_rules": office}]
    estate["key_vaults"] = [{**server, "name": "kv-one", "ip_rules": ["198.51.100.7"], "tags": {"team": "sec"}}]
    web_b = next(s for s in estate["sites"] if s["name"] == "web-b")
    web_b["ip_security_restrictions"] = [{"name": "office", "ip_address": "198.51.100.0/24", "priority": 100}]
    estate["cosmosdb_accounts"] = [
        {**server, "name": "cos-one", "ip_rules": ["198.51.100.7"], "tags": {"team": "data"}}
    ]
    estate["storage_accounts"] = [{**server, "name": "st-one", "location": "northeurope", "ip_rules": ["198.51.100.7"]}]
    return estate


@pytest.fixture
def estate() -> dict[str, Any]:
    return backend_estate()


@pytest.fixture
def env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Emulator]:
    monkeypatch.setenv("ALLOWLIST_ARM_ENDPOINT", emulator.base_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_path))
    monkeypatch.chdir(tmp_path)
    yield emulator


def config_for(tmp_path: Path, target: str, **settings: Any) -> str:
    block = {"name": "apps", "targets": [target], "subscriptions": [SUB1]}
    return str(write_config(tmp_path / "allowlist.toml", [block], poll_interval=0, **settings))


def covered(emu: Emulator, target: str) -> set[str]:
    found = set()
    for rule in emu.state.snapshot()[target]:
        first, last = ipaddress.IPv4Address(rule["start"]), ipaddress.IPv4Address(rule["end"])
        if int(last) - int(first) < 1024:
            found |= {str(ipaddress.IPv4Address(n)) for n in range(int(first), int(last) + 1)}
    return found


def names(emu: Emulator, target: str) -> set[str]:
    return {r["name"] for r in emu.state.snapshot()[target]}


@pytest.mark.parametrize("kind", list(ALL))
def test_first_sync_then_an_idempotent_rerun(kind: str, env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = config_for(tmp_path, ALL[kind])
    first = cli(capsys, "apply", "--yes", "-c", config)
    assert first.code == 0, first.err
    assert covered(env, ALL[kind]) >= NEEDED
    assert FOREIGN[kind] in names(env, ALL[kind])  # what allowlist did not add stays
    env.reset_log()
    second = cli(capsys, "apply", "--yes", "-c", config)
    assert second.code == 0 and "No changes." in second.out and writes(env) == []


def test_rule_names_follow_each_services_rules(env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    assert cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, PG)).code == 0
    assert "allowlist-20_0_0_1-20_0_0_3" in names(env, PG)  # PostgreSQL refuses dots in rule names
    assert cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, STORAGE)).code == 0
    # Storage refuses /31 and /32 CIDRs: 20.0.0.1-20.0.0.3 is written as three single addresses.
    assert {"20.0.0.1", "20.0.0.2", "20.0.0.3"} <= names(env, STORAGE)
    assert cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, COSMOS)).code == 0
    assert {"20.0.0.1", "20.0.0.2/31"} <= names(env, COSMOS)
    assert cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, REDIS)).code == 0
    assert "allowlist_20_0_0_1_20_0_0_3" in names(env, REDIS)  # Redis names: letters, digits, underscores


@pytest.mark.parametrize("kind", list(ALL))
def test_an_address_change_adds_the_new_and_removes_only_allowlists_stale(
    kind: str, env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    config = config_for(tmp_path, ALL[kind])
    assert cli(capsys, "apply", "--yes", "-c", config).code == 0
    web_b = next(s for s in env.state.sites.values() if s.name == "web-b")
    web_b.possible_outbound_ip_addresses = "20.0.0.2,70.0.0.5"
    result = cli(capsys, "apply", "--yes", "-c", config)
    assert result.code == 0, result.err
    now = covered(env, ALL[kind])
    assert {"20.0.0.1", "20.0.0.2", "30.0.0.1", "70.0.0.5"} <= now
    assert "40.0.0.9" not in now and "20.0.0.3" not in now
    assert FOREIGN[kind] in names(env, ALL[kind])
    history = env.state.rules_over_time(ALL[kind])
    assert all({"20.0.0.1", "30.0.0.1"} <= {a for r in state for a in _span(r)} for state in history[-3:])


def _span(rule: Any) -> set[str]:
    first, last = int(ipaddress.IPv4Address(rule.start)), int(ipaddress.IPv4Address(rule.end))
    return {str(ipaddress.IPv4Address(n)) for n in range(first, min(last, first + 1024) + 1)}


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_long_running_writes_are_polled_to_completion(kind: str, env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    assert cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, ALL[kind])).code == 0
    puts = [r for r in env.requests if r.method == "PUT"]
    polls = [r for r in env.requests if "/azureAsyncOperation/" in r.path]
    assert puts and all(r.status == 202 for r in puts)
    assert len(polls) >= 2 * len(puts)  # InProgress, then Succeeded: every operation awaited
    assert covered(env, ALL[kind]) >= NEEDED


@pytest.mark.parametrize("kind", list(ALL))
def test_a_failed_write_is_reported_and_loses_nothing(kind: str, env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    config = config_for(tmp_path, ALL[kind])
    before = env.state.snapshot()[ALL[kind]]
    env.faults.config = FaultConfig(lro_failure_rate=1.0)
    result = cli(capsys, "apply", "--yes", "-c", config)
    assert result.code == 1 and "FAILED" in result.out and "some writes failed" in result.err
    assert env.state.snapshot()[ALL[kind]] == before
    env.faults.config = FaultConfig()
    assert cli(capsys, "apply", "--yes", "-c", config).code == 0  # and the next run converges


def test_the_cosmos_ledger_proves_ownership(env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    account = env.state.accounts[COSMOS.lower()]
    account.ip_rules.append("30.0.0.1")  # someone added an address an app needs before allowlist did
    config = config_for(tmp_path, COSMOS)
    assert cli(capsys, "apply", "--yes", "-c", config).code == 0
    assert account.tags["team"] == "data"  # other tags untouched
    ledger = " ".join(v for k, v in account.tags.items() if k.startswith("allowlist-owned-")).split()
    assert "30.0.0.1" not in ledger and "40.0.0.9" in ledger
    # When no app needs them any more, allowlist removes what it added and nothing else.
    for site in env.state.sites.values():
        site.possible_outbound_ip_addresses = "88.0.0.1"
        for slot in site.slots.values():
            slot.possible_outbound_ip_addresses = "88.0.0.1"
    assert cli(capsys, "apply", "--yes", "--force", "-c", config).code == 0
    assert set(account.ip_rules) == {"198.51.100.7", "30.0.0.1", "88.0.0.1"}


def test_cosmos_never_opens_or_starts_a_firewall(env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    account = env.state.accounts[COSMOS.lower()]
    account.ip_rules.clear()  # an empty list means every address is allowed
    result = cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, COSMOS))
    assert result.code == 1 and "adding rules would turn its firewall on" in result.err
    assert writes(env) == [] and account.ip_rules == []


def test_storage_warns_about_same_region_apps_and_an_open_account(env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    account = env.state.accounts[STORAGE.lower()]
    account.location, account.default_action = "westeurope", "Allow"
    result = cli(capsys, "plan", "-c", config_for(tmp_path, STORAGE))
    assert result.code == 0
    assert "warning: web-a runs in West Europe, the account's own region" in result.out
    assert "defaultAction is Allow" in result.out


def test_a_flexible_server_rejects_a_prefix_it_cannot_name(env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    result = cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, PG, prefix="allow.list-"))
    assert result.code == 1 and "not valid for a PostgreSQL flexible server" in result.err
    assert writes(env) == []


def test_storage_limit_is_its_own(env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    data = cli(capsys, "plan", "-c", config_for(tmp_path, STORAGE), "-o", "json").json()
    assert data["targets"][0]["rule_limit"] == 400


def test_the_estate_rejects_nothing_it_serves() -> None:
    loaded = build_estate(backend_estate())
    assert {a.name for a in loaded.state.accounts.values()} == {"cos-one", "st-one", "kv-one"}
    assert {s.type for s in loaded.state.servers.values()} >= {
        "Microsoft.DBforPostgreSQL/flexibleServers",
        "Microsoft.DBforMySQL/flexibleServers",
    }


def test_a_key_vault_keeps_its_other_settings_and_warns_when_open(env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    vault = env.state.accounts[VAULT.lower()]
    vault.default_action = "Allow"
    result = cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, VAULT))
    assert result.code == 0, result.err
    assert "defaultAction is Allow" in result.out
    assert vault.tags["team"] == "sec" and "198.51.100.7" in vault.ip_rules and "40.0.0.9" in vault.ip_rules
    assert any(k.startswith("allowlist-owned-") for k in vault.tags)  # ownership through the same ledger


def test_an_app_without_access_restrictions_is_never_closed(env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    site = env.state.sites[API.lower()]
    site.ip_security_restrictions.clear()  # no restrictions: the app accepts every client
    result = cli(capsys, "apply", "--yes", "-c", config_for(tmp_path, API))
    assert result.code == 1 and "adding rules would turn its firewall on" in result.err
    assert writes(env) == [] and site.ip_security_restrictions == []


def test_access_restrictions_keep_every_entry_allowlist_did_not_write(
    env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    site = env.state.sites[API.lower()]
    theirs = [
        {"name": "office", "ipAddress": "198.51.100.0/24", "action": "Allow", "priority": 100, "tag": "Default"},
        {"name": "block", "ipAddress": "203.0.113.0/24", "action": "Deny", "priority": 50, "tag": "Default"},
        {
            "name": "front-door",
            "ipAddress": "AzureFrontDoor.Backend",
            "action": "Allow",
            "priority": 200,
            "tag": "ServiceTag",
            "headers": {"x-azure-fdid": ["0000"]},
        },
    ]
    site.ip_security_restrictions[:] = [dict(e) for e in theirs]
    config = config_for(tmp_path, API, restriction_priority=300)
    assert cli(capsys, "apply", "--yes", "-c", config).code == 0
    entries = site.ip_security_restrictions
    assert entries[:3] == theirs  # byte for byte, in their order
    ours = entries[3:]
    assert ours and all(e["priority"] == 300 and e["name"].startswith("allowlist-") for e in ours)
    assert covered(env, API) >= NEEDED
    # The apps move: allowlist takes back exactly what it wrote, and writes the new address at its priority.
    for each in env.state.sites.values():
        for app in (each, *each.slots.values()):
            app.possible_outbound_ip_addresses = "88.0.0.1"
    last = cli(capsys, "apply", "--yes", "--force", "-c", config)
    assert last.code == 0, last.out + last.err
    assert site.ip_security_restrictions[:3] == theirs
    assert [(e["name"], e["ipAddress"]) for e in site.ip_security_restrictions[3:]] == [
        ("allowlist-88.0.0.1", "88.0.0.1/32")
    ]
