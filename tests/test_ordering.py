"""The order of one target's writes, checked step by step on random firewalls: no step holds more rules than
the limit, and no step uncovers an address the apps need that the firewall covered before the run."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from allowlist.model import IpRange
from allowlist.ordering import order_writes


@dataclass(frozen=True)
class W:
    action: str
    range: IpRange


def covered(ranges: list[IpRange]) -> set[int]:
    return {n for r in ranges for n in range(r.start, r.end + 1)}


def random_case(rng: random.Random) -> tuple[list[IpRange], list[W], list[IpRange]]:
    def some(k: int) -> list[IpRange]:
        out = []
        for _ in range(k):
            start = rng.randrange(0, 60)
            out.append(IpRange(start, start + rng.randrange(0, 4)))
        return list(dict.fromkeys(out))

    existing = some(rng.randrange(0, 8))
    needed = some(rng.randrange(1, 8))
    deletes = [W("delete", r) for r in existing if r not in needed and rng.random() < 0.7]
    creates = [W("create", r) for r in needed if r not in existing]
    return existing, creates + deletes, needed


@pytest.mark.parametrize("seed", range(300))
def test_every_step_keeps_needed_addresses_and_the_limit(seed: int) -> None:
    rng = random.Random(seed)
    existing, writes, needed = random_case(rng)
    others = rng.randrange(0, 3)
    limit = len(existing) + others + rng.randrange(0, 3)
    found = order_writes(existing, others, writes, limit, needed)
    protected = covered(existing) & covered(needed)
    if found.short:
        assert found.writes == ()
        assert order_writes(existing, others, writes, limit + found.short, needed).short == 0
        if found.short > 1:  # the least room that works: one rule less does not
            assert order_writes(existing, others, writes, limit + found.short - 1, needed).short
        return
    assert sorted(found.writes, key=id) == sorted(writes, key=id)  # every write, once
    rules = list(existing)
    for write in found.writes:
        if write.action == "create":
            rules.append(write.range)
        else:
            rules.remove(write.range)
        assert len(rules) + others <= max(limit, len(existing) + others), (write, rules)
        assert protected <= covered(rules), (write, rules)
