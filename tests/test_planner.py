"""The planner is pure: these tests need no network."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from allowlist.config import build_scope
from allowlist.findings import Kind
from allowlist.model import Discovery, DiscoveryIssue, ExistingRule, IpRange
from allowlist.naming import parse_rule_name, rule_name
from allowlist.planfile import (
    APPS_PER_CHANGE,
    _canonical_chunks,
    _change,
    canonical_json,
    load_plan,
    plan_to_data,
    plan_to_json,
    save_plan,
)
from allowlist.planner import Change, build_plan, desired_ranges, plan_target
from allowlist.scope import Settings
from allowlist.targets.base import Firewall
from allowlist.targets.registry import capabilities, parse_target
from tests.conftest import SQL1, SUB1, SUB2
from tests.test_config import app

TARGET = parse_target(SQL1)
S = Settings()
SQL = capabilities("sql")


def rule(name: str, start: str, end: str | None = None) -> ExistingRule:
    return ExistingRule(name, IpRange.parse(start, end))


def threshold(p) -> str | None:  # type: ignore[no-untyped-def]
    return next((f.message for f in p.findings if f.kind == Kind.DELETE_THRESHOLD), None)


def plan(desired: list[str], existing: list[ExistingRule], settings: Settings = S, incomplete: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    apps = [app("a", ipv4=tuple(desired))]
    return plan_target(TARGET, desired_ranges(apps), Firewall(tuple(existing)), settings, SQL, incomplete)


def test_names_come_from_the_range() -> None:
    assert rule_name("allowlist-", IpRange.parse("20.0.0.1"), SQL) == "allowlist-20.0.0.1"
    assert rule_name("fw-", IpRange.parse("20.0.0.1", "20.0.0.4"), SQL) == "fw-20.0.0.1-20.0.0.4"
    assert rule_name("fw-", IpRange.parse("20.0.0.1", "20.0.0.4"), capabilities("postgresql")) == "fw-20_0_0_1-20_0_0_4"


def test_desired_ranges_merge_across_apps_and_record_who_needs_them() -> None:
    apps = [
        app("a", ipv4=("20.0.0.1", "20.0.0.2")),
        app("b", ipv4=("20.0.0.3", "40.0.0.1")),
        app("c", ipv4=("99.0.0.1",), pinned=False, reason="empty"),
    ]
    desired = desired_ranges(apps)
    assert [str(r) for r in desired] == ["20.0.0.1-20.0.0.3", "40.0.0.1"]
    assert [len(v) for v in desired.values()] == [2, 1]


@pytest.mark.parametrize("seed", range(20))
def test_desired_ranges_match_a_per_address_reckoning_on_apps_sharing_stamps(seed: int) -> None:
    """Worked out per stamp (apps sharing an address set), the answer is the one a plain count over every
    app and address gives: each merged range, with exactly the pinned apps holding an address inside it."""
    rng = random.Random(seed)
    v4 = [f"20.0.0.{i}" for i in range(1, 16)]
    v6 = [f"2001:db8::{i:x}" for i in range(1, 8)]
    stamps = [(tuple(rng.sample(v4, rng.randint(1, 5))), tuple(rng.sample(v6, rng.randint(0, 2)))) for _ in range(6)]
    apps = []
    for i in range(rng.randint(1, 30)):
        four, six = rng.choice(stamps)
        apps.append(app(f"App{i:02d}" if i % 3 else f"app{i:02d}", ipv4=four, ipv6=six, pinned=rng.random() > 0.1))
    for ipv6 in (False, True):
        holding: dict[tuple[int, int], set[str]] = {}  # (version, address) -> the pinned apps holding it
        for a in (a for a in apps if a.pinned):
            for address in a.ipv4 + a.ipv6 if ipv6 else a.ipv4:
                one = IpRange.parse(address, address)
                holding.setdefault((one.version, one.start), set()).add(a.id)
        expected: list[tuple[IpRange, set[str]]] = []
        for (version, n), who in sorted(holding.items()):
            if expected and expected[-1][0].version == version and expected[-1][0].end + 1 == n:
                expected[-1] = (IpRange(expected[-1][0].start, n, version), expected[-1][1] | who)
            else:
                expected.append((IpRange(n, n, version), set(who)))
        got = desired_ranges(apps, ipv6)
        assert [(r, set(who)) for r, who in got.items()] == expected
        assert all(list(who) == sorted(who, key=str.lower) for who in got.values())
        # Apps handed over in ID order, as apps_by_target gives them, are numbered as they come: same answer.
        in_order = sorted(apps, key=lambda a: a.id.lower())
        assert desired_ranges(in_order, ipv6, in_id_order=True) == got


def test_first_sync_creates_and_leaves_other_rules_alone() -> None:
    p = plan(["20.0.0.1", "20.0.0.2"], [rule("AllowAllWindowsAzureIps", "0.0.0.0"), rule("office", "1.1.1.1")])
    assert [(c.action, c.name) for c in p.changes] == [("create", "allowlist-20.0.0.1-20.0.0.2")]
    assert [r.name for r in p.unmanaged] == ["AllowAllWindowsAzureIps", "office"]
    assert threshold(p) is None and p.blockers == ()


def test_second_sync_keeps_everything() -> None:
    p = plan(["20.0.0.1"], [rule("ALLOWLIST-20.0.0.1", "20.0.0.1")])  # names compare without case
    assert p.changes == () and [c.name for c in p.keeps] == ["ALLOWLIST-20.0.0.1"]


def test_tier_change_creates_new_and_deletes_stale_and_creates_come_first() -> None:
    p = plan(["30.0.0.1"], [rule("allowlist-20.0.0.1", "20.0.0.1")])
    assert [(c.action, c.name) for c in p.changes] == [
        ("create", "allowlist-30.0.0.1"),
        ("delete", "allowlist-20.0.0.1"),
    ]


def test_ownership_is_the_name_grammar_not_a_bare_prefix() -> None:
    sql = capabilities("sql")
    assert parse_rule_name("o", "office-vpn", sql) is None
    assert parse_rule_name("allowlist-", "allowlist-20.1.2.3-20.1.2.6", sql) == IpRange.parse("20.1.2.3", "20.1.2.6")
    assert parse_rule_name("allowlist-", "ALLOWLIST-20.1.2.3", sql) == IpRange.parse("20.1.2.3")
    for odd in ("allowlist-20.1.2.3-20.1.2.3", "allowlist-020.1.2.3", "allowlist-20.1.2.3 ", "allowlist-x"):
        assert parse_rule_name("allowlist-", odd, sql) is None, odd
    assert parse_rule_name("fw-", "fw-20_0_0_1-20_0_0_4", capabilities("mysql")) == IpRange.parse(
        "20.0.0.1", "20.0.0.4"
    )
    p = plan([], [rule("office-vpn", "9.9.9.9")], replace(S, prefix="o"))
    assert p.changes == () and [r.name for r in p.unmanaged] == ["office-vpn"]


def test_an_edited_managed_rule_is_reported_and_left_alone() -> None:
    p = plan(["30.0.0.1"], [rule("allowlist-20.0.0.1", "20.0.0.1", "20.0.0.9"), rule("allowlist-x", "7.7.7.7")])
    assert [(c.action, c.name) for c in p.changes] == [("create", "allowlist-30.0.0.1")]
    kinds = {f.kind for f in p.findings}
    assert {Kind.TAMPERED, Kind.UNPARSED} <= kinds and Kind.NAME_TAKEN not in kinds


def test_a_tampered_rule_holding_a_wanted_name_blocks_instead_of_being_overwritten() -> None:
    p = plan(["20.0.0.1"], [rule("allowlist-20.0.0.1", "20.0.0.1", "20.0.0.9")])
    assert p.changes == () and any("cannot create 'allowlist-20.0.0.1'" in b for b in p.blockers)


def test_protected_names_are_never_managed_even_with_a_matching_prefix() -> None:
    p = plan([], [rule("AllowAllWindowsAzureIps", "0.0.0.0")], replace(S, prefix="Allow"))
    assert p.changes == () and len(p.unmanaged) == 1


def test_incomplete_discovery_withholds_every_delete_but_still_creates() -> None:
    p = plan(["30.0.0.1"], [rule("allowlist-20.0.0.1", "20.0.0.1")], incomplete=("sub x: 403",))
    assert [c.action for c in p.changes] == ["create"]
    assert [c.name for c in p.withheld] == ["allowlist-20.0.0.1"]


def test_delete_threshold_applies_from_ten_managed_rules() -> None:
    existing = [rule(f"allowlist-20.0.0.{i}", f"20.0.0.{i}") for i in range(1, 11, 2)]  # 5 rules
    assert threshold(plan(["20.0.0.1"], existing)) is None  # 4/5 deleted, but under ten managed rules
    existing = [rule(f"allowlist-20.0.0.{i}", f"20.0.0.{i}") for i in range(1, 21, 2)]  # 10 rules
    keep = [f"20.0.0.{i}" for i in range(1, 15, 2)]  # keep 7, delete 3: 30%, not over
    assert threshold(plan(keep, existing)) is None
    p = plan(keep[:6], existing)  # delete 4 of 10
    assert threshold(p) == "Too many deletes, 40% is over 30% (4/10), force required"


def test_removing_every_managed_rule_needs_force() -> None:
    p = plan([], [rule("allowlist-20.0.0.1", "20.0.0.1")])
    assert threshold(p) == "would remove all 1 rules allowlist manages here and add none, force required"


def test_rule_limit_counts_every_rule_that_would_remain() -> None:
    existing = [
        rule("AllowAllWindowsAzureIps", "0.0.0.0"),
        rule("office", "1.1.1.1"),
        rule("allowlist-9.0.0.1", "9.0.0.1"),
    ]
    p = plan(["20.0.0.1", "20.0.0.3"], existing, replace(S, rule_limit=3))
    assert p.blockers == (
        "would hold 4 firewall rules (2 not managed by allowlist), over the limit of 3; --compress (compress = true) "
        "would fit it by opening 1 extra address(es)",
    )
    assert plan(["20.0.0.1"], existing, replace(S, rule_limit=3)).blockers == ()


def test_wide_ranges_need_explicit_permission() -> None:
    wide = [f"20.{i}.{j}.{k}" for i in (0, 1) for j in range(256) for k in range(256)]
    p = plan(wide[:65537], [])
    assert "wider than a /16" in p.blockers[0]
    assert plan(wide[:65537], [], replace(S, allow_wide_ranges=True)).blockers == ()


def test_write_order_makes_room_before_overflowing_creates() -> None:
    existing = [rule("office", "1.1.1.1"), rule("allowlist-9.0.0.1", "9.0.0.1")]
    p = plan(["20.0.0.1", "20.0.0.3"], existing, replace(S, rule_limit=3))
    assert [c.action for c in p.changes] == ["create", "delete", "create"]


def discovery(apps, issues=()):  # type: ignore[no-untyped-def]
    return Discovery(tuple(apps), tuple(issues))


def test_build_plan_maps_gaps_to_the_targets_they_feed() -> None:
    scope = build_scope({
        "sync": [
            {"name": "one", "targets": [SQL1], "subscriptions": [SUB1]},
            {"name": "two", "targets": [SQL1.replace("sql-one", "sql-x")], "subscriptions": [SUB2]},
        ]
    })  # fmt: skip
    apps = [app("a", ipv4=("20.0.0.1",)), app("p4", pinned=False, reason="possibleOutboundIpAddresses is empty")]
    issues = [DiscoveryIssue(f"/subscriptions/{SUB2}", "403 AuthorizationFailed: no")]
    existing = {t.key: Firewall((rule("allowlist-5.5.5.5", "5.5.5.5"),)) for t in scope.targets}
    result = build_plan(scope, discovery(apps, issues), existing)
    one, two = sorted(result.targets, key=lambda t: t.target.name)
    assert one.target.name == "sql-one" and one.incomplete == (
        f"p4 ({apps[1].id}) is not pinned: possibleOutboundIpAddresses is empty",
    )
    assert two.incomplete == (f"/subscriptions/{SUB2}: 403 AuthorizationFailed: no",)
    assert not one.of("delete") and not two.of("delete") and len(two.withheld) == 1


def test_a_target_that_cannot_be_read_gets_no_changes() -> None:
    scope = build_scope({"sync": [{"name": "one", "targets": [SQL1]}]})
    result = build_plan(scope, discovery([app("a", ipv4=("20.0.0.1",))]), {TARGET.key: "404 ResourceNotFound: gone"})
    assert result.targets[0].error == "404 ResourceNotFound: gone" and not result.has_changes
    assert not result.fully_read and result.findings[0].kind == Kind.READ_FAILURE


def test_plans_are_byte_identical_whatever_order_arm_answers_in(tmp_path: Path) -> None:
    scope = build_scope({"sync": [{"name": "one", "targets": [SQL1]}]})
    apps = [app(f"w{i}", ipv4=tuple(f"20.0.{i}.{j}" for j in range(1, 6))) for i in range(8)]
    existing = [rule(f"allowlist-30.0.0.{i}", f"30.0.0.{i}") for i in range(1, 5)] + [rule("office", "1.1.1.1")]
    first = plan_to_json(build_plan(scope, discovery(apps), {TARGET.key: Firewall(tuple(existing))}))
    rng = random.Random(3)
    for _ in range(5):
        shuffled_apps = [replace(a, ipv4=tuple(rng.sample(a.ipv4, len(a.ipv4)))) for a in rng.sample(apps, len(apps))]
        shuffled = rng.sample(existing, len(existing))
        shuffled_plan = build_plan(scope, discovery(shuffled_apps), {TARGET.key: Firewall(tuple(shuffled))})
        assert plan_to_json(shuffled_plan) == first


def test_saved_plans_round_trip(tmp_path: Path) -> None:
    scope = build_scope({"settings": {"prefix": "fw-"}, "sync": [{"name": "one", "targets": [SQL1]}]})
    apps = [app("a", ipv4=("20.0.0.1",), tags=(("team", "a"),), warnings=("x",)), app("b", pinned=False, reason="r")]
    original = build_plan(scope, discovery(apps), {TARGET.key: Firewall((rule("fw-9.9.9.9", "9.9.9.9", "9.9.9.10"),))})
    path = tmp_path / "plan.json"
    save_plan(original, path)
    assert load_plan(path) == original
    # Written in pieces as it is made, the file is still the canonical JSON its digest covers.
    saved = path.read_bytes()
    data = plan_to_data(original)
    assert saved == (canonical_json({k: v for k, v in data.items() if k != "digest"})[:-1]
                     + f',"digest":"{data["digest"]}"}}\n').encode()  # fmt: skip


def test_a_change_names_its_first_apps_and_counts_them_all(tmp_path: Path) -> None:
    """A rule on a shared stamp serves many apps: the saved change names the first APPS_PER_CHANGE in ID
    order (the file stays small at thousands of apps) and app_count says how many there are."""
    scope = build_scope({"sync": [{"name": "one", "targets": [SQL1]}]})
    apps = [app(f"web-{n:02d}", ipv4=("20.0.0.1",)) for n in reversed(range(APPS_PER_CHANGE + 3))]
    path = tmp_path / "plan.json"
    save_plan(build_plan(scope, discovery(apps), {TARGET.key: Firewall(())}), path)
    (change,) = json.loads(path.read_text())["targets"][0]["changes"]
    assert change["app_count"] == APPS_PER_CHANGE + 3
    assert change["apps"] == sorted(a.id for a in apps)[:APPS_PER_CHANGE]


@pytest.mark.parametrize(
    "value",
    [{}, [], {"b": [1, {"z": "é", "a": None}], "a": '"q"\n'}, {"x": [[], {}, [{"k": [1.5, True]}]], "é": "ü"}],
)
def test_canonical_json_in_pieces_is_byte_for_byte_the_whole(value: Any) -> None:
    assert b"".join(_canonical_chunks(value)) == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


AWKWARD = ["plain", "é", "a\x7fb", "\u2028", "tab\t", 'q"\\', "x\x00\x1f", "/", "\U0001f600", ""]


@pytest.mark.parametrize("text", AWKWARD)
def test_targets_and_apps_written_by_the_fast_encoder_are_still_canonical(text: str) -> None:
    value = {
        "targets": [{"id": text, "changes": [{"apps": [text, "b"], "app_count": 2**70, "n": -1}], "error": None}],
        "apps": [{"name": text, "tags": {text: text, "z": "1"}, "pinned": True}, {"k": [[], {}]}],
        "policy": {"max_delete_fraction": 1e16, "x": 0.25},
    }
    assert b"".join(_canonical_chunks(value)) == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# --- Planning from capabilities alone: the planner knows no back end by name. ---

STORAGE = capabilities("storage")
COSMOS = capabilities("cosmosdb")
PG = capabilities("postgresql")


def list_plan(caps, desired: list[str], entries: list[str], owned: set[str], **kw):  # type: ignore[no-untyped-def]
    from allowlist.targets.addresslist import entry_range

    firewall = Firewall(tuple(ExistingRule(e, entry_range(e)) for e in entries), frozenset(owned), **kw)  # type: ignore[arg-type]
    return plan_target(TARGET, desired_ranges([app("a", ipv4=tuple(desired))]), firewall, S, caps)


def test_list_entries_follow_each_services_shape() -> None:
    from allowlist.naming import list_entries

    span = IpRange.parse("20.0.0.1", "20.0.0.12")
    assert [e for e, _ in list_entries(span, COSMOS)] == [
        "20.0.0.1",
        "20.0.0.2/31",
        "20.0.0.4/30",
        "20.0.0.8/30",
        "20.0.0.12",
    ]
    assert [e for e, _ in list_entries(span, STORAGE)] == [
        "20.0.0.1", "20.0.0.2", "20.0.0.3", "20.0.0.4/30", "20.0.0.8/30", "20.0.0.12",
    ]  # fmt: skip


def test_address_lists_remove_only_what_the_ledger_proves() -> None:
    p = list_plan(COSMOS, ["20.0.0.1"], ["20.0.0.1", "9.9.9.9", "8.8.8.8"], owned={"9.9.9.9"})
    assert [(c.action, c.name) for c in p.changes] == [("delete", "9.9.9.9")]
    assert [c.name for c in p.keeps] == ["20.0.0.1"]  # someone else's entry already serves: kept, not claimed
    assert {r.name for r in p.unmanaged} == {"20.0.0.1", "8.8.8.8"}


def test_cosmos_blockers_never_open_or_start_a_firewall() -> None:
    assert "turn its firewall on" in list_plan(COSMOS, ["20.0.0.1"], [], owned=set()).blockers[0]
    p = list_plan(COSMOS, [], ["9.9.9.9"], owned={"9.9.9.9"})
    assert "opens it to every address" in p.blockers[0]
    assert list_plan(STORAGE, ["20.0.0.1"], [], owned=set()).blockers == ()  # Storage: empty means deny


def test_the_ledger_must_fit_in_the_tags_left() -> None:
    p = list_plan(STORAGE, [f"20.0.{i}.1" for i in range(40)], ["1.1.1.1"], owned=set(), tag_count=49)
    assert any("ownership ledger needs 2 tags" in b for b in p.blockers)


def test_names_the_service_refuses_block_the_plan() -> None:
    from allowlist.scope import Settings as Cfg

    p = plan_target(TARGET, desired_ranges([app("a", ipv4=("20.0.0.1",))]), Firewall(()), Cfg(prefix="a.b-"), PG)
    assert "rule name 'a.b-20_0_0_1' is not valid for a PostgreSQL flexible server" in p.blockers[0]
    assert p.rule_limit == 128


def test_each_change_names_the_egress_modes_that_need_it() -> None:
    rng = IpRange.parse("20.0.0.1")
    modes = {"/a": "platform", "/b": "nat-gateway", "/c": "platform"}
    assert _change(Change("create", "n", rng, apps=("/a", "/c")), modes)["egress"] == ["platform"]
    mixed = Change("create", "n", rng, apps=("/c", "static:office", "/b", "/gone", "/a"))
    assert _change(mixed, modes)["egress"] == ["nat-gateway", "platform", "static", "unknown"]
    assert "egress" not in _change(Change("delete", "n", rng), modes)
    # Changes sharing one tuple of apps (ranges of one stamp) never share the list
    shared = ("/b", "/a")
    first = _change(Change("create", "x", rng, apps=shared), modes)["egress"]
    second = _change(Change("keep", "y", rng, apps=shared), modes)["egress"]
    assert first == second == ["nat-gateway", "platform"] and first is not second
