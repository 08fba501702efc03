from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from allowlist.config import build_scope, load_scope, scope_from_flags
from allowlist.errors import ConfigError
from allowlist.model import AppEgress
from allowlist.scope import Selector, Settings
from allowlist.targets.registry import parse_target
from tests.conftest import SQL1, SQL2, SUB1, SUB2


def app(name: str, **kw: Any) -> AppEgress:
    fields: dict[str, Any] = {
        "id": f"/subscriptions/{SUB1}/resourceGroups/rg-web/providers/Microsoft.Web/sites/{name}",
        "name": name,
        "subscription_id": SUB1,
        "resource_group": "rg-web",
        "kind": "app",
        "location": "West Europe",
    }
    fields.update(kw)
    return AppEgress(**fields)


def test_full_config(tmp_path: Path) -> None:
    path = tmp_path / "allowlist.toml"
    path.write_text(
        f"""
[settings]
prefix = "fw-"
addresses = "current"
max_delete_percent = 50
rule_limit = 256

[[sync]]
name = "shop"
targets = ["{SQL1}", "{SQL2}"]
subscriptions = ["{SUB1.upper()}"]
resource_groups = ["rg-*"]
names = ["web-*"]
tags = {{ team = "a" }}
kinds = ["app"]
slots = false
"""
    )
    scope = load_scope(path)
    assert scope.settings == Settings(prefix="fw-", addresses="current", max_delete_percent=50, rule_limit=256)
    (block,) = scope.blocks
    assert block.selector.subscriptions == (SUB1,)
    assert [t.name for t in scope.targets] == ["sql-one", "sql-two"]
    assert block.selector.matches(app("web-x", tags=(("team", "a"),)))
    assert not block.selector.matches(app("web-x/slot", tags=(("team", "a"),)))
    assert not block.selector.matches(app("web-x", tags=(("team", "b"),)))
    assert not block.selector.matches(app("api-x", tags=(("team", "a"),)))
    assert not block.selector.matches(app("web-x", kind="functionapp,linux", tags=(("team", "a"),)))


def test_selector_globs_and_tag_presence() -> None:
    scope = scope_from_flags(Settings(), [SQL1], [], ["RG-WEB"], ["web-a/*"], ["env=*"], ["linux"], True)
    selector = scope.blocks[0].selector
    assert selector.matches(app("web-a/staging", kind="app,linux", tags=(("env", "x"),)))
    assert not selector.matches(app("web-a/staging", kind="app", tags=(("env", "x"),)))
    assert not selector.matches(app("web-a/staging", kind="app,linux"))


def test_a_slot_named_alone_has_its_sites_slots_listed() -> None:
    """Slots are listed only for sites that may hold a selected one: by the site's own tests, except that a
    name can name the slot alone."""
    site = app("web-a", kind="app,linux")

    def selector(*names: str, slots: bool = True) -> Selector:
        return Selector(subscriptions=(SUB1,), names=names, slots=slots)

    assert selector("web-a/staging").may_select_slots_of(site) and not selector("web-a/staging").matches(site)
    assert selector("WEB-*/st*").may_select_slots_of(site)
    assert selector("*staging").may_select_slots_of(site)  # a wildcard may span the "/": listed to be sure
    assert selector("web-a").may_select_slots_of(site)
    assert not selector("web-b/staging").may_select_slots_of(site)
    assert not selector("web-b").may_select_slots_of(site)
    assert not selector("web-a/staging", slots=False).may_select_slots_of(site)
    assert not Selector(subscriptions=(SUB2,), names=("web-a/staging",)).may_select_slots_of(site)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[settings]\nprefix = ''", "settings.prefix: the rule prefix cannot be empty"),
        ("[settings]\nprefix = 'a/b'", "settings.prefix: the rule prefix 'a/b' contains a character"),
        ("[settings]\nrule_limit = 'many'", "settings.rule_limit: has the wrong type (str)"),
        ("[settings]\nrule_limit = 0", "settings.rule_limit: must be at least 1"),
        ("[settings]\nallow_wide_ranges = 1", "settings.allow_wide_ranges: has the wrong type (int)"),
        ("[settings]\naddresses = 'all'", "settings.addresses: must be 'possible'"),
        ("[settings]\ncolour = 1", "settings.colour: unknown setting"),
        ("[[sync]]\nname = 'x'", "sync[0].targets: needs at least one target resource ID"),
        (
            "[[sync]]\ntargets = ['/subscriptions/x/resourceGroups/y']",
            "sync[0].targets[0]: '/subscriptions/x/resourceGroups/y' is not a resource ID",
        ),
        (
            "[[sync]]\ntargets = ['/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/s']",
            "sync[0].targets[0]: '/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/s': "
            "Microsoft.Compute/virtualMachines is not a supported target (supported: Microsoft.Sql/servers, ",
        ),
        (f"[[sync]]\ntargets = ['{SQL1}']\ntags = ['a']", "sync[0].tags: must be a table of strings"),
        (f"[[sync]]\ntargets = ['{SQL1}']\nslots = 'no'", "sync[0].slots: must be true or false"),
        (f"[[sync]]\ntargets = ['{SQL1}']\nsubscription = 'x'", "sync[0].subscription: unknown key"),
        (
            f"[[sync]]\nname='a'\ntargets = ['{SQL1}']\n[[sync]]\nname='a'\ntargets = ['{SQL1}']",
            "the name 'a' is used by more",
        ),
        ("sync = 3", "sync: must be an array of tables"),
        ("[other]", "other: unknown key"),
    ],
)
def test_config_errors_name_file_key_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "allowlist.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_scope(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_scope(tmp_path / "nope.toml")
    path = tmp_path / "bad.toml"
    path.write_text("[settings\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scope(path)


def test_bad_flags() -> None:
    with pytest.raises(ConfigError, match="--tag 'team': expected KEY=VALUE"):
        scope_from_flags(Settings(), [SQL1], [], [], [], ["team"], [], True)
    with pytest.raises(ConfigError, match="--target: 'nope' is not a resource ID"):
        scope_from_flags(Settings(), ["nope"], [], [], [], [], [], True)


def test_target_ids_compare_without_case() -> None:
    a, b = (
        parse_target(SQL1),
        parse_target(SQL1.upper().replace("MICROSOFT.SQL/SERVERS", "Microsoft.Sql/servers")),
    )
    assert a.key == b.key
    scope = build_scope({"sync": [{"name": "x", "targets": [SQL1]}, {"name": "y", "targets": [SQL1.upper()]}]})
    assert len(scope.targets) == 1


@pytest.mark.parametrize("seed", range(10))
def test_apps_by_target_matches_asking_every_block_of_every_target(seed: int) -> None:
    """Decided once per app (blocks differing only in subscriptions share the answer), each target still
    gets exactly the apps some block of its selects, in ID order."""

    rng = random.Random(seed)
    subs = [SUB1, SUB2, "33333333-3333-4333-8333-333333333333"]
    servers = [SQL1, SQL2, SQL1.replace("sql-one", "sql-three")]
    rests: list[dict[str, Any]] = [{}, {"names": ["web-*"]}, {"kinds": ["functionapp"]}, {"slots": False}, {}]
    blocks = [
        {"name": f"b{i}", "targets": rng.sample(servers, rng.randint(1, 2)),
         **({"subscriptions": rng.sample(subs, rng.randint(1, 3))} if rng.random() < 0.8 else {}),
         **rng.choice(rests)}
        for i in range(rng.randint(1, 8))
    ]  # fmt: skip
    scope = build_scope({"sync": blocks})
    apps = [
        app(f"{rng.choice(['web-', 'api-'])}{i}" + ("/stage" if rng.random() < 0.3 else ""),
            id=f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Web/sites/s{i}", subscription_id=sub,
            kind=rng.choice(["app", "functionapp,linux"]))
        for i, sub in ((i, rng.choice(subs)) for i in range(40))
    ]  # fmt: skip
    feeding = scope.apps_by_target(apps)
    for target in scope.targets:
        chosen = [a for a in apps if any(b.selector.matches(a) for b in scope.blocks_for(target))]
        assert feeding[target.key] == sorted(chosen, key=lambda a: a.id.lower())
