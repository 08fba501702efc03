"""`allowlist init` on the demo estate: a commented draft that loads, plans, and never overwrites a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from allowlist.config import load_scope
from allowlist.emulator import Emulator
from tests.cli_helpers import any_writes, cli
from tests.test_audit import SUB1, SUB2, demo  # noqa: F401 (the fixture)

Cap = pytest.CaptureFixture[str]


def test_init_drafts_a_config_that_plans(demo: Emulator, tmp_path: Path, capsys: Cap) -> None:  # noqa: F811
    result = cli(capsys, "init")
    assert result.code == 0, result.err
    text = (tmp_path / "allowlist.toml").read_text()
    assert text.startswith("# allowlist.toml drafted by `allowlist init`") and "A FIRST GUESS" in text
    scope = load_scope(tmp_path / "allowlist.toml")
    every = {"sql-shop", "pg-orders", "redis-shop", "cosmos-catalog", "sql-reports", "streportsexports", "sql-legacy"}
    assert {t.name for t in scope.targets} == every | {"kv-legacy"}
    # The databases live apart from their apps, so each block guesses the apps of its subscription, and says so.
    assert f"# Guess: the 6 app(s) in subscription {SUB1}: payments-api, shop-api," in text
    # An app whose listed addresses are not where it connects from is left out by name, and said so.
    assert "# Left out: shop-search-v4 is not pinned (PremiumV4 apps have no fixed outbound" in text
    assert 'names = ["payments-api", "shop-api", "shop-checkout", "shop-orders-func", "shop-web",' in text
    assert {b.selector.subscriptions for b in scope.blocks} == {(SUB1,), (SUB2,)}
    # Nothing but reads (the Resource Graph query is a POST that reads).
    assert all(w.startswith("POST /providers/Microsoft.ResourceGraph/resources") for w in any_writes(demo))
    planned = cli(capsys, "plan")
    assert planned.code == 0, planned.err  # a draft that plans as it is


def test_init_never_overwrites(demo: Emulator, tmp_path: Path, capsys: Cap) -> None:  # noqa: F811
    (tmp_path / "allowlist.toml").write_text("# mine\n")
    refused = cli(capsys, "init")
    assert refused.code == 1 and "already exists: allowlist init never overwrites a file" in refused.err
    assert (tmp_path / "allowlist.toml").read_text() == "# mine\n"
    assert cli(capsys, "init", "--out", "draft.toml").code == 0 and (tmp_path / "draft.toml").exists()
    printed = cli(capsys, "init", "--out", "-")
    assert printed.code == 0 and printed.out == (tmp_path / "draft.toml").read_text()  # stdout: nothing written
    assert not (tmp_path / "-").exists()


def test_a_resource_group_with_apps_is_its_own_guess(demo: Emulator, tmp_path: Path, capsys: Cap) -> None:  # noqa: F811
    site = next(s for s in demo.state.sites.values() if s.name == "reports-web")
    site.resource_group = "rg-legacy"  # now an app lives beside sql-legacy
    assert cli(capsys, "init", "--subscription", SUB2).code == 0
    text = (tmp_path / "allowlist.toml").read_text()
    assert "# Guess: the 1 app(s) in rg-legacy: reports-web." in text
    scope = load_scope(tmp_path / "allowlist.toml")
    legacy = next(b for b in scope.blocks if b.name == "rg-legacy")
    assert legacy.selector.resource_groups == ("rg-legacy",)
    assert all(t.subscription_id == SUB2 for t in scope.targets)


def test_init_with_nothing_to_sync_writes_nothing(demo: Emulator, tmp_path: Path, capsys: Cap) -> None:  # noqa: F811
    demo.state.servers.clear()
    demo.state.accounts.clear()
    refused = cli(capsys, "init")
    assert refused.code == 1 and "found no supported server or account in 2 subscription(s)" in refused.err
    assert not (tmp_path / "allowlist.toml").exists()
