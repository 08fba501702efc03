"""`allowlist audit` on the demo estate (it holds AllowAllWindowsAzureIps, a wide rule, a stale rule and a vault
whose rules are off), every output format, the exit-code policy, SARIF against its official schema; and the
judging itself on hand-made firewalls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from allowlist.audit import Audited, audit
from allowlist.emulator import Emulator, FaultConfig
from allowlist.emulator.estate import demo_estate_path, load_estate
from allowlist.model import AppEgress, ExistingRule, IpRange
from allowlist.targets.base import Firewall
from allowlist.targets.registry import parse_target
from tests.cli_helpers import cli

Cap = pytest.CaptureFixture[str]
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "allowlist" / "data" / "demo-config.toml"
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"  # OASIS SARIF 2.1.0 (errata 01)
SUB1, SUB2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Emulator]:
    loaded = load_estate(demo_estate_path())
    with Emulator(loaded.state, page_size=loaded.page_size, faults=FaultConfig()) as emu:
        monkeypatch.setenv("ALLOWLIST_ARM_ENDPOINT", emu.base_url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_path))
        monkeypatch.setenv("ALLOWLIST_ACCESS_TOKEN", "secret-pipeline-token")
        monkeypatch.chdir(tmp_path)
        yield emu


def findings(capsys: Cap, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = cli(capsys, "audit", "-o", "json", *args)
    assert result.code in (0, 2), result.err
    return result.code, result.json()["findings"]


def test_the_demo_estate_shows_each_kind_of_problem(demo: Emulator, capsys: Cap) -> None:
    code, found = findings(capsys, "-c", str(DEMO_CONFIG))
    assert code == 2  # high findings fail the default policy
    by = {(f["id"], f["target"].rsplit("/", 1)[-1], f["rule"]): f for f in found}
    azure = by[("AL002", "sql-shop", "AllowAllWindowsAzureIps")]
    assert azure["severity"] == "high"
    # The shop block feeds sql-shop: its apps need exactly the ranges the plan creates or keeps there.
    assert "replace it with the 5 range(s) the apps your config syncs to it need" in azure["fix"]
    assert by[("AL004", "sql-legacy", "partner-network")]["severity"] == "medium"  # a /14, on a server not synced
    assert by[("AL005", "sql-legacy", "old-batch-vm")]["severity"] == "medium"  # no app connects from it
    assert by[("AL006", "sql-shop", "allowlist-40.74.30.99")]["fix"] == "run allowlist apply"
    assert by[("AL003", "kv-legacy", "")]["severity"] == "high"  # defaultAction Allow
    # A rule an app uses is no finding; a rule for an address an app uses is not stale.
    assert not any(f["rule"].startswith("allowlist-20.105") for f in found)
    assert [f["severity"] for f in found] == sorted((f["severity"] for f in found), key=SEVERITY_ORDER.index)
    # Read-only, within the built-in Reader role: every request was a read (the Resource Graph query too).
    assert all(r.action.lower().endswith("/read") for r in demo.requests), {r.action for r in demo.requests}
    assert not [r for r in demo.requests if r.method not in ("GET", "POST")]


SEVERITY_ORDER = ["critical", "high", "medium", "low"]


def test_fail_on_sets_the_exit_code(demo: Emulator, capsys: Cap) -> None:
    assert cli(capsys, "audit", "--fail-on", "critical").code == 0  # nothing critical in the demo
    assert cli(capsys, "audit", "--fail-on", "high").code == 2
    assert cli(capsys, "audit", "--fail-on", "never").code == 0
    bad = cli(capsys, "audit", "--fail-on", "severe")
    assert bad.code == 1 and bad.err.startswith("error: ") and "Traceback" not in bad.err


def test_an_explicit_subscription_narrows_the_audit(demo: Emulator, capsys: Cap) -> None:
    _, found = findings(capsys, "-s", SUB1)
    assert found and all(f"/subscriptions/{SUB1}/" in f["target"] for f in found)
    assert not any(f["target"].endswith("/sql-legacy") for f in found)


def test_sarif_output_is_valid_sarif_2_1_0(demo: Emulator, capsys: Cap) -> None:
    result = cli(capsys, "audit", "-o", "sarif", "-c", str(DEMO_CONFIG))
    assert result.code == 2
    log = json.loads(result.out)
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    (run,) = log["runs"]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["AL002"]["properties"]["security-severity"] == "8.0"  # how GitHub ranks the alert
    results = run["results"]
    assert {r["ruleId"] for r in results} >= {"AL002", "AL003", "AL004", "AL005"}
    assert all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == str(DEMO_CONFIG) for r in results)
    fingerprints = [r["partialFingerprints"]["allowlistFinding/v1"] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)
    again = json.loads(cli(capsys, "audit", "-o", "sarif", "-c", str(DEMO_CONFIG)).out)
    assert again == log  # deterministic: code scanning matches findings run to run


def test_text_and_markdown_say_why_and_how_to_fix(demo: Emulator, capsys: Cap) -> None:
    text = cli(capsys, "audit").out
    assert "HIGH     AL002 sql-shop (sql): rule 'AllowAllWindowsAzureIps' (0.0.0.0) lets any Azure tenant" in text
    assert "why: " in text and "fix: " in text
    assert text.rstrip().endswith("2 high, 2 medium, 5 low.")
    markdown = cli(capsys, "audit", "-o", "markdown").out
    assert markdown.startswith("## allowlist audit")
    assert "| high | AL002 Allow Azure services | `sql-shop` |" in markdown


def test_an_unreadable_subscription_makes_the_audit_fail(demo: Emulator, capsys: Cap) -> None:
    demo.faults.config = FaultConfig(forbid=(f"/subscriptions/{SUB2}",))
    result = cli(capsys, "audit", "-o", "json")
    assert result.code == 1 and "the audit is incomplete" in result.err
    assert result.json()["incomplete"]


def _app(name: str, *addresses: str, rg: str = "rg-web") -> AppEgress:
    return AppEgress(f"/subscriptions/{SUB1}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{name}", name, SUB1,
                     rg, "app", "westeurope", ipv4=tuple(a for a in addresses if ":" not in a),
                     ipv6=tuple(a for a in addresses if ":" in a))  # fmt: skip


def _rules(*rules: tuple[str, str, str]) -> Firewall:
    return Firewall(tuple(ExistingRule(n, IpRange.parse(s, e)) for n, s, e in rules))


SQL = parse_target(f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-x")


def test_judging_rules() -> None:
    apps = [_app("a", "20.0.0.1", "20.0.0.2", "2001:db8::1"), _app("b", "20.0.0.9", rg="rg-data")]
    firewall = _rules(
        ("everyone", "0.0.0.0", "255.255.255.255"),
        ("AllowAllWindowsAzureIps", "0.0.0.0", "0.0.0.0"),
        ("wide", "30.0.0.0", "30.1.255.255"),  # a /15
        ("used", "20.0.0.1", "20.0.0.2"),
        ("partly-used", "20.0.0.8", "20.0.0.10"),
        ("v6-used", "2001:db8::1", "2001:db8::1"),
        ("stale", "40.0.0.1", "40.0.0.1"),
        ("private", "10.0.0.0", "10.0.0.255"),
        ("allowlist-50.0.0.1", "50.0.0.1", "50.0.0.1"),
    )
    found = audit([Audited(SQL, firewall, {"publicNetworkAccess": "Disabled"})], apps, "allowlist-", {}).findings
    assert [(f.check.id, f.rule) for f in found] == [
        ("AL001", "everyone"),
        ("AL002", "AllowAllWindowsAzureIps"),
        ("AL004", "wide"),
        ("AL005", "stale"),
        ("AL006", "allowlist-50.0.0.1"),
    ]
    # No config: the apps in the server's resource group (b) are the first guess.
    assert "the 1 range(s) the apps in its resource group rg-data need" in found[1].fix
    configured = audit([Audited(SQL, firewall)], apps, "allowlist-", {SQL.key: apps}).findings
    azure = next(f for f in configured if f.check.id == "AL002")
    assert "the 2 range(s) the apps your config syncs to it need" in azure.fix  # 20.0.0.1-2 and 20.0.0.9


def test_judging_accounts() -> None:
    def account(
        kind_path: str, props: dict[str, Any], entries: tuple[str, ...] = (), owned: frozenset[str] = frozenset()
    ) -> Audited:
        ref = parse_target(f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/{kind_path}")
        rules = tuple(ExistingRule(e, IpRange.parse(e)) for e in entries)
        return Audited(ref, Firewall(rules, owned=owned), props)

    resources = [
        account("Microsoft.Storage/storageAccounts/st", {"networkAcls": {"defaultAction": "Allow"}}),
        account(
            "Microsoft.KeyVault/vaults/kv",
            {"networkAcls": {"defaultAction": "Deny"}},
            ("60.0.0.1",),
            frozenset({"60.0.0.1"}),
        ),
        account("Microsoft.DocumentDB/databaseAccounts/cos", {"publicNetworkAccess": "Enabled"}),
        account("Microsoft.DocumentDB/databaseAccounts/closed", {"publicNetworkAccess": "Disabled"}),
    ]
    found = audit(resources, [_app("a", "20.0.0.1")], "allowlist-", {}).findings
    assert sorted((f.check.id, f.target.name, f.rule) for f in found) == [
        ("AL003", "cos", ""),
        ("AL003", "st", ""),
        ("AL006", "kv", "60.0.0.1"),  # the ledger says allowlist added it: the next apply removes it
    ]
    unreadable = audit([Audited(SQL, "could not read firewall rules: forbidden")], [], "allowlist-", {}).findings
    assert [(f.check.id, f.message) for f in unreadable] == [("AL008", "could not read firewall rules: forbidden")]


def test_a_fresh_process_audits_completely_every_time(demo: Emulator) -> None:
    """The audit's threads make their first requests at once, so each imports the SDK while another does:
    an import order race once failed two audits in five ("deadlock detected by _ModuleLock"). Only a new
    process imports anything, so each try is one."""
    import os
    import subprocess
    import sys

    for _ in range(6):
        run = subprocess.run([sys.executable, "-m", "allowlist", "audit", "-c", str(DEMO_CONFIG), "-q"],
                             capture_output=True, text=True, timeout=120, env=os.environ.copy())  # fmt: skip
        assert run.returncode == 2, run.stderr[-1500:]  # findings, never "incomplete"
