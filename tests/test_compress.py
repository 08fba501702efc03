"""Fitting under the rule limit by least exposure: optimal against brute force, capped, deterministic,
and end to end on the emulator with a 128-rule SQL server."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from allowlist.compress import RESERVED, _closable, compress
from allowlist.emulator import Emulator
from allowlist.model import IpRange
from tests.cli_helpers import any_writes, cli, rules, write_config
from tests.conftest import SQL1, SUB1, base_estate, site

Cap = pytest.CaptureFixture[str]
BASE = int(IpRange.parse("52.0.0.0").start)


def scattered(rng: random.Random, n: int, spread: int = 40) -> list[IpRange]:
    """n disjoint, non-adjacent ranges at random gaps, all in public space."""
    out, at = [], BASE
    for _ in range(n):
        at += rng.randint(2, spread)
        width = rng.randint(0, 3)
        out.append(IpRange(at, at + width))
        at += width
    return out


def brute_force(ranges: list[IpRange], budget: int) -> int:
    """The least extra addresses over every way to close len - budget gaps."""
    gaps = [b.start - a.end - 1 for a, b in itertools.pairwise(ranges)]
    need = len(ranges) - budget
    return min(sum(c) for c in itertools.combinations(gaps, need)) if need > 0 else 0


@pytest.mark.parametrize("seed", range(40))
def test_least_exposure_is_optimal_against_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    ranges = scattered(rng, rng.randint(2, 12))
    budget = rng.randint(1, len(ranges))
    found = compress(ranges, budget, max_gap=10_000)
    assert found is not None and len(found.ranges) <= budget
    assert found.extra == brute_force(ranges, budget)
    covered = {n for r in found.ranges for n in range(r.start, r.end + 1)}
    assert all(n in covered for r in ranges for n in range(r.start, r.end + 1)), "every needed address stays"


def test_same_rules_whatever_the_order() -> None:
    rng = random.Random(7)
    ranges = scattered(rng, 60)
    first = compress(ranges, 40)
    for _ in range(5):
        assert compress(rng.sample(ranges, len(ranges)), 40) == first


def test_ties_break_by_address_so_reruns_do_not_churn() -> None:
    even = [IpRange(BASE + 10 * i, BASE + 10 * i) for i in range(6)]  # every gap is 9
    found = compress(even, 4)
    assert found is not None and [str(m.range) for m in found.merges] == ["52.0.0.0-52.0.0.20"]


def test_a_small_change_moves_only_the_merges_near_it() -> None:
    rng = random.Random(11)
    ranges = scattered(rng, 80, spread=200)
    before = compress(ranges, 60)
    moved = [*ranges[:-1], IpRange(ranges[-1].end + 500, ranges[-1].end + 500)]  # the last app changes stamp
    after = compress(moved, 60)
    assert before is not None and after is not None
    assert len(set(before.merges) ^ set(after.merges)) <= 4


def test_caps_gap_width_and_reserved_space() -> None:
    far = [IpRange(BASE, BASE), IpRange(BASE + 1000, BASE + 1000)]
    assert compress(far, 1, max_gap=256) is None  # the gap is too wide to close
    wide = [IpRange(BASE, BASE), IpRange(BASE + 2**16, BASE + 2**16)]
    assert compress(wide, 1, max_gap=2**17) is None  # the rule would be wider than a /16
    assert compress(wide, 1, max_gap=2**17, allow_wide=True) is not None
    around_private = [IpRange.parse("9.255.255.250"), IpRange.parse("10.0.0.5")]
    assert compress(around_private, 1, max_gap=1000) is None  # never opens 10.0.0.0/8


def test_a_gap_touching_any_reserved_block_never_closes() -> None:
    """Each block's edges, and random gaps, against the plain test over every block."""
    spans = [(int(n.network_address), int(n.broadcast_address)) for n in RESERVED]
    rng = random.Random(7)
    gaps = [(lo + d, hi + e) for lo, hi in spans for d in (-2, -1, 0, 1) for e in (-1, 0, 1, 2)]
    gaps += [(a, a + rng.randint(0, 512)) for a in (rng.randrange(2, 2**32 - 600) for _ in range(20_000))]
    for start, end in gaps:
        if start > end or start < 1 or end >= 2**32 - 1:
            continue
        touches = any(start <= hi and lo <= end for lo, hi in spans)
        closable = _closable(IpRange(start - 1, start - 1), IpRange(end + 1, end + 1), 2**32)
        assert closable is not touches, (IpRange(start, end), touches)


# --- end to end: 140 non-contiguous addresses, a 128-rule SQL server ----------------------------------


@pytest.fixture
def estate() -> dict[str, Any]:
    estate = base_estate()
    addresses = [f"52.40.{i // 50}.{(i % 50) * 4 + 1}" for i in range(140)]  # 140 ranges, gaps of 3
    addresses[-1] = "52.40.9.9"  # one far away: its gap is the largest and never worth closing
    estate["sites"] = [site(SUB1, "rg-web", f"app-{i:03d}", addresses[i]) for i in range(140)]
    return estate


def test_140_ranges_fit_a_128_rule_server_with_compress_and_the_refusal_names_the_fix(
    cli_env: Emulator, tmp_path: Path, capsys: Cap
) -> None:
    block = {"name": "all", "targets": [SQL1], "subscriptions": [SUB1]}
    config = write_config(tmp_path / "allowlist.toml", [block])
    refused = cli(capsys, "plan", "-c", str(config))
    assert refused.code == 1 and "--compress (compress = true) would fit it by opening" in refused.err
    assert any_writes(cli_env) == []
    result = cli(capsys, "apply", "--yes", "-c", str(config), "--compress", "-o", "json")
    assert result.code == 0, result.err
    target = result.json()["plan"]["targets"][0]
    held = rules(cli_env, SQL1)
    assert len(held) <= 128  # AllowAllWindowsAzureIps and office included
    needed = 140 - (128 - 2)  # gaps to close
    assert target["extra_addresses"] == 3 * needed  # the minimum: every closed gap holds 3 addresses
    assert all(m["extra"] == 3 * (len(m["parts"]) - 1) for m in target["merged"])
    assert "extra address(es) opened in all" in cli(capsys, "plan", "-c", str(config), "--compress").out
    rendered = cli(capsys, "render", "-c", str(config), "--compress", "--format", "json").json()
    assert {r["name"] for t in rendered["targets"] for r in t["rules"]} == {
        n for n in held if n.startswith("allowlist-")
    }


def test_storage_merges_count_list_entries_and_keep_its_cidr_rule() -> None:
    from allowlist.naming import list_entries
    from allowlist.targets.registry import capabilities

    storage = capabilities("storage")
    ranges = [IpRange(BASE + 8 * i, BASE + 8 * i + 2) for i in range(20)]  # 3 addresses: 3 entries each

    def entries(r: IpRange) -> int:
        return len(list_entries(r, storage))

    found = compress(ranges, 40, cost=entries)
    assert found is not None and sum(entries(r) for r in found.ranges) <= 40
    for r in found.ranges:
        for entry, _ in list_entries(r, storage):
            assert "/" not in entry or int(entry.split("/")[1]) <= 30, entry
