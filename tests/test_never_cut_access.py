"""No app loses access and nobody's entry is lost, proved on the emulator's firewall timeline: at the rule
limit, when runs overlap, when a saved plan is applied after the apps changed, when a person edits a list
during a run, and under harsh faults."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from allowlist.apply import ApplyResult, apply_plan
from allowlist.azure import ArmClients
from allowlist.config import build_scope
from allowlist.emulator import Emulator, FaultConfig, build_estate
from allowlist.emulator.http import Request
from allowlist.emulator.state import SQL, FirewallRule
from allowlist.findings import Kind
from allowlist.planner import build_plan
from allowlist.scope import Scope
from allowlist.sources.appservice import discover
from allowlist.sync import make_plan, read_targets
from tests.cli_helpers import any_writes, cli, rules, write_config, writes
from tests.conftest import SQL1, SQL2, SUB1, SUB2
from tests.test_backends import ALL, API, COSMOS, STORAGE, VAULT, backend_estate

Cap = pytest.CaptureFixture[str]
ONE = [{"name": "one", "targets": [SQL1], "subscriptions": [SUB1]}]


def covered(rules: Iterable[FirewallRule], address: str) -> bool:
    n = int(ipaddress.IPv4Address(address))
    return any(int(ipaddress.IPv4Address(r.start)) <= n <= int(ipaddress.IPv4Address(r.end)) for r in rules)


def gaps(emu: Emulator, target: str, needed: Iterable[str]) -> list[tuple[int, str]]:
    """(step, address) for every moment an address needed now was uncovered after having been covered."""
    found = []
    seen: set[str] = set()
    for step, state in enumerate(emu.state.rules_over_time(target)):
        for address in needed:
            if covered(state, address):
                seen.add(address)
            elif address in seen:
                found.append((step, address))
    return found


def add_rule(emu: Emulator, name: str, start: str, end: str | None = None, server: str = SQL1) -> None:
    emu.state.servers[server.lower()].rules[name.lower()] = FirewallRule(name, start, end or start)


def site(emu: Emulator, name: str) -> Any:
    return next(s for s in emu.state.sites.values() if s.name == name)


# --- at the rule limit ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [5, 6])
def test_at_the_limit_a_needed_address_is_never_uncovered(
    limit: int, cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    """A stale merged range holds 20.0.0.1, which the apps still need; its replacement needs a free rule."""
    add_rule(cli_env, "allowlist-20.0.0.0-20.0.0.1", "20.0.0.0", "20.0.0.1")
    add_rule(cli_env, "allowlist-30.0.0.1", "30.0.0.1")
    add_rule(cli_env, "allowlist-40.0.0.9", "40.0.0.9")  # 5 rules with AllowAllWindowsAzureIps and office
    cli_env.state.rule_limits[SQL] = limit
    config = write_config(tmp_path / "allowlist.toml", ONE, rule_limit=limit)
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    if limit == 5:  # no order keeps 20.0.0.1 covered: refuse, and say how much room it needs
        assert result.code == 1 and "needs 1 more free rule(s)" in result.err
        assert any_writes(cli_env) == []
    else:
        assert result.code == 0, result.err
        assert writes(cli_env) == [("PUT", "allowlist-20.0.0.1-20.0.0.3"), ("DELETE", "allowlist-20.0.0.0-20.0.0.1")]
    assert gaps(cli_env, SQL1, ["20.0.0.1", "20.0.0.2", "20.0.0.3", "30.0.0.1", "40.0.0.9"]) == []


def test_at_the_limit_a_delete_that_uncovers_nothing_needed_makes_room_first(
    cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    add_rule(cli_env, "allowlist-5.5.5.5", "5.5.5.5")
    add_rule(cli_env, "allowlist-30.0.0.1", "30.0.0.1")
    add_rule(cli_env, "allowlist-40.0.0.9", "40.0.0.9")
    cli_env.state.rule_limits[SQL] = 5
    config = write_config(tmp_path / "allowlist.toml", ONE, rule_limit=5)
    assert cli(capsys, "apply", "--yes", "-c", str(config)).code == 0
    assert writes(cli_env) == [("DELETE", "allowlist-5.5.5.5"), ("PUT", "allowlist-20.0.0.1-20.0.0.3")]
    assert gaps(cli_env, SQL1, ["30.0.0.1", "40.0.0.9"]) == []


# --- overlapping runs -------------------------------------------------------------------------------


@pytest.fixture
def synced(clients: ArmClients, emulator: Emulator) -> Scope:
    """SQL1 in step with the SUB1 apps; then web-b moves tier: 40.0.0.9 becomes 45.0.0.9."""
    scope = build_scope({"settings": {"retry_backoff": 0}, "sync": ONE})
    assert apply_plan(make_plan(scope, clients).plan, clients).ok
    return scope


def move_tier(emu: Emulator) -> None:
    web_b = site(emu, "web-b")
    web_b.possible_outbound_ip_addresses = web_b.possible_outbound_ip_addresses.replace("40.0.0.9", "45.0.0.9")


def test_a_run_that_began_before_another_wrote_adds_but_does_not_delete(
    synced: Scope, clients: ArmClients, emulator: Emulator
) -> None:
    began = time.time()
    old_apps = discover(synced, clients)  # run A reads the apps: web-b still at 40.0.0.9 ...
    move_tier(emulator)
    newer = apply_plan(make_plan(synced, clients).plan, clients)  # ... run B sees 45.0.0.9 and finishes first
    assert newer.ok and "allowlist-45.0.0.9" in rules(emulator, SQL1)
    stale = build_plan(synced, old_apps, read_targets(synced.targets, clients, 4, "allowlist-"))
    assert [c.name for c in stale.targets[0].of("delete")] == ["allowlist-45.0.0.9"]  # what A would do
    result = apply_plan(stale, clients, began=began)
    assert [f.kind for f in result.findings] == [Kind.INCOMPLETE]
    assert "wrote it after this run began reading apps" in result.findings[0].message
    assert "allowlist-45.0.0.9" in rules(emulator, SQL1)
    assert gaps(emulator, SQL1, ["45.0.0.9", "20.0.0.1", "30.0.0.1"]) == []
    # The next run sees today's apps and finishes the job.
    assert apply_plan(make_plan(synced, clients).plan, clients).ok
    assert "allowlist-40.0.0.9" not in rules(emulator, SQL1)


def test_two_runs_at_once_never_interleave_writes(
    synced: Scope, clients: ArmClients, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("allowlist.apply.LEASE_SETTLE", 0.3)
    add_rule(emulator, "allowlist-9.9.9.9", "9.9.9.9")  # stale: both runs want it gone
    old = make_plan(synced, clients).plan
    move_tier(emulator)
    new = make_plan(synced, clients).plan
    results: dict[str, ApplyResult] = {}
    runs = [threading.Thread(target=lambda k=k, p=p: results.__setitem__(k, apply_plan(p, clients)))
            for k, p in (("old", old), ("new", new))]  # fmt: skip
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    held = [k for k, r in results.items() if any(f.kind == Kind.LEASE_HELD for f in r.findings)]
    assert len(held) == 1, {k: r.findings for k, r in results.items()}  # exactly one run wrote
    assert gaps(emulator, SQL1, ["45.0.0.9", "20.0.0.1", "30.0.0.1"]) == []
    assert apply_plan(make_plan(synced, clients).plan, clients).ok  # the next run converges
    final = rules(emulator, SQL1)
    assert "allowlist-45.0.0.9" in final and "allowlist-9.9.9.9" not in final


def test_each_lease_is_read_back_a_settle_after_its_own_offer_before_its_target_is_written(
    clients: ArmClients, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases are offered together; each target waits out the settle from its own offer, reads its lease
    back, and only then writes: no target's first write comes before its lease was confirmed."""
    monkeypatch.setattr("allowlist.apply.LEASE_SETTLE", 0.3)
    emulator.faults.config = FaultConfig(latency_ms=30, throttle=False)
    both = {"name": "both", "targets": [SQL1, SQL2], "subscriptions": [SUB1, SUB2]}
    scope = build_scope({"settings": {"retry_backoff": 0, "concurrency": 1}, "sync": [both]})
    plan = make_plan(scope, clients).plan
    emulator.reset_log()
    assert apply_plan(plan, clients).ok
    log = list(emulator.requests)
    for server in (SQL1, SQL2):
        mine = [r for r in log if r.path.lower().startswith(server.lower() + "/")]
        tags = [r for r in mine if "Microsoft.Resources/tags" in r.path]
        offer = next(r for r in tags if r.method == "PATCH")
        confirm = next(r for r in tags if r.method == "GET" and r.at > offer.at)
        first_write = min(r.at - r.duration for r in mine if r.method == "PUT" and "/firewallRules/" in r.path)
        assert confirm.at - confirm.duration >= offer.at + 0.3 - 0.01  # the settle, from its own offer
        assert first_write >= confirm.at
    offers = [r.at for r in log if r.method == "PATCH" and "Microsoft.Resources/tags" in r.path][:2]
    assert max(offers) - min(offers) < 0.3  # offered together, before either target's work


def test_a_live_lease_of_another_run_skips_the_target(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    until = int(time.time()) + 300
    cli_env.state.servers[SQL1.lower()].tags["allowlist-lease"] = f"someone-else {until}"
    config = write_config(tmp_path / "allowlist.toml", ONE)
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 1 and "another allowlist run (someone-else) holds its lease" in result.err
    assert writes(cli_env) == []
    cli_env.state.servers[SQL1.lower()].tags["allowlist-lease"] = f"someone-else {int(time.time()) - 1000}"
    assert cli(capsys, "apply", "--yes", "-c", str(config)).code == 0  # an expired lease is taken over
    assert cli_env.state.servers[SQL1.lower()].tags["allowlist-lease"].split()[0] != "someone-else"


# --- saved plans are checked against today's apps --------------------------------------------------


def test_a_saved_plan_is_refused_after_an_app_changes_tier(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    add_rule(cli_env, "allowlist-30.0.0.1", "30.0.0.1")
    add_rule(cli_env, "allowlist-45.0.0.9", "45.0.0.9")  # stale now; the app moves there before apply
    config = write_config(tmp_path / "allowlist.toml", ONE)
    assert cli(capsys, "plan", "-c", str(config), "--out", "plan.json").code == 0
    move_tier(cli_env)
    cli_env.reset_log()
    result = cli(capsys, "apply", "plan.json")
    assert result.code == 1 and "the plan is stale" in result.err
    assert "web-b now connects from 20.0.0.2, 20.0.0.3, 45.0.0.9 (was 20.0.0.2, 20.0.0.3, 40.0.0.9)" in result.err
    assert any_writes(cli_env) == []


# --- a person's list entry is never lost -------------------------------------------------------------


@pytest.fixture
def estate() -> dict[str, Any]:
    return backend_estate()


@pytest.mark.parametrize("account", [COSMOS, STORAGE, VAULT])
def test_a_persons_edit_between_read_and_write_is_kept(
    account: str, cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    target = cli_env.state.accounts[account.lower()]
    landed = []

    def person_adds_an_entry(request: Request) -> None:  # lands just before allowlist's first PATCH
        if request.method == "PATCH" and request.path.lower() == account.lower() and not landed:
            with cli_env.state.lock:
                target.ip_rules.append("203.0.113.50")
                target.version += 1
            landed.append(True)

    cli_env.hooks.append(person_adds_an_entry)
    block = {"name": "apps", "targets": [account], "subscriptions": [SUB1]}
    config = write_config(tmp_path / "allowlist.toml", [block], poll_interval=0)
    result = cli(capsys, "apply", "--yes", "-c", str(config))
    assert result.code == 0, result.err
    assert landed and "203.0.113.50" in target.ip_rules and "198.51.100.7" in target.ip_rules
    assert next(r.status for r in cli_env.requests if r.method == "PATCH" and "tags/default" not in r.path) == 412
    assert {"20.0.0.1", "30.0.0.1", "40.0.0.9"} <= {e.split("/")[0] for e in target.ip_rules}


def test_a_persons_access_restriction_added_mid_run_is_kept(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    site = cli_env.state.sites[API.lower()]
    landed = []
    theirs = {"name": "partner", "ipAddress": "203.0.113.50/32", "action": "Allow", "priority": 10, "tag": "Default"}

    def person_adds_a_restriction(request: Request) -> None:  # lands just before allowlist's first PATCH
        if request.method == "PATCH" and request.path.lower() == f"{API}/config/web".lower() and not landed:
            with cli_env.state.lock:
                site.ip_security_restrictions.append(dict(theirs))
                site.config_version += 1
            landed.append(True)

    cli_env.hooks.append(person_adds_a_restriction)
    block = {"name": "apps", "targets": [API], "subscriptions": [SUB1]}
    result = cli(capsys, "apply", "--yes", "-c", str(write_config(tmp_path / "allowlist.toml", [block])))
    assert result.code == 0, result.err
    assert landed and theirs in site.ip_security_restrictions
    assert next(r.status for r in cli_env.requests if r.method == "PATCH" and "config/web" in r.path) == 412
    assert sum(e["name"].startswith("allowlist-") for e in site.ip_security_restrictions) == 3


def test_restrictions_cleared_mid_run_are_never_turned_back_on(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    """A person removed every restriction (the app is open to all) after allowlist read them: adding one
    now would shut out every client but the apps, so the write is refused and the app stays open."""
    site = cli_env.state.sites[API.lower()]

    def person_clears_them(request: Request) -> None:
        if request.method == "PATCH" and request.path.lower() == f"{API}/config/web".lower():
            with cli_env.state.lock:
                site.ip_security_restrictions.clear()
                site.config_version += 1

    cli_env.hooks.append(person_clears_them)
    block = {"name": "apps", "targets": [API], "subscriptions": [SUB1]}
    result = cli(capsys, "apply", "--yes", "-c", str(write_config(tmp_path / "allowlist.toml", [block])))
    assert result.code == 1 and "an app without any accepts every client" in result.out + result.err
    assert site.ip_security_restrictions == []


# --- harsh faults: converge in at most two runs -------------------------------------------------------

HARSH = FaultConfig(
    throttle_rate=0.2, retry_after=0, error_rate=0.1, drop_rate=0.03, lro_failure_rate=0.1, throttle=False
)


@pytest.mark.parametrize("seed", range(10))
def test_harsh_faults_converge_in_two_applies_without_a_gap(seed: int, tmp_path: Path) -> None:
    from dataclasses import replace

    from allowlist.azure import ArmSettings
    from tests.conftest import StaticCred

    loaded = build_estate(backend_estate())
    with Emulator(loaded.state, page_size=2, faults=replace(HARSH, seed=seed)) as emu:
        for kind_target in ALL.values():  # a stale rule or entry allowlist owns on each target
            if "flexibleServers" in kind_target:
                add_rule(emu, "allowlist-5.5.5.5", "5.5.5.5", server=kind_target)
        add_rule(emu, "allowlist-5.5.5.5", "5.5.5.5")
        targets = [SQL1, *ALL.values()]
        scope = build_scope({"settings": {"poll_interval": 0}, "sync": [{"name": "all", "targets": targets}]})
        settings = ArmSettings(endpoint=emu.base_url, ca_bundle=str(emu.ca_path), retry_backoff=0, poll_interval=0)
        clients = ArmClients(settings, StaticCred())
        runs = 0
        for runs in (1, 2):  # noqa: B007 - the count is the result
            plan = make_plan(scope, clients).plan
            if not plan.has_changes and plan.fully_read:
                break
            apply_plan(plan, clients)
        emu.faults.config = FaultConfig(throttle=False)
        final = make_plan(scope, clients).plan
        left = [(t.target.name, [(c.action, c.name) for c in t.changes]) for t in final.targets if t.changes]
        assert final.fully_read and not final.has_changes, f"seed {seed}: not converged after {runs} applies: {left}"
        needed = ["20.0.0.1", "20.0.0.2", "20.0.0.3", "30.0.0.1", "40.0.0.9", "198.51.100.7"]
        for target in targets:
            assert gaps(emu, target, needed) == [], (seed, target)
