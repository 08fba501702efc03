"""The order of one target's writes, chosen so that no write uncovers an address still needed.

Pure interval arithmetic, so the invariant is decided (and tested) in the planner, not hoped for in
apply: at every step, each address that the firewall covered before the run and the apps still need
stays covered by some rule. Creates come first while the rule limit leaves room; a delete is taken
only when the rules left cover every needed address it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from allowlist.model import IpRange


class Write(Protocol):
    @property
    def action(self) -> str: ...

    @property
    def range(self) -> IpRange: ...


Span = tuple[int, int]  # an inclusive range on one number line for IPv4 and IPv6 (IpRange.span)


def union(ranges: Iterable[Span]) -> list[Span]:
    """Sorted, disjoint, non-adjacent spans covering exactly the same addresses."""
    merged: list[Span] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """Both inputs sorted and disjoint (as `union` returns them)."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start <= end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def covers(rules: Sequence[Span], needed: Sequence[Span]) -> bool:
    """Whether the union of `rules` holds every address of `needed` (sorted and disjoint)."""
    return intersect(union(rules), needed) == list(needed)


W = TypeVar("W", bound=Write)


@dataclass(frozen=True)
class Ordering(Generic[W]):
    writes: tuple[W, ...]  # every write, in a safe order; empty when `short` > 0
    short: int = 0  # rules of headroom missing for any safe order


def order_writes(
    existing: Sequence[IpRange], others: int, writes: Sequence[W], limit: int, needed: Sequence[IpRange]
) -> Ordering[W]:
    """`existing`: every rule's range now; `others`: rules that hold no IPv4 range but count to the limit."""
    protected = intersect(union(r.span for r in needed), union(r.span for r in existing))
    found = _simulate(existing, others, writes, limit, protected)
    if found is not None:
        return Ordering(tuple(found))
    # More room never hurts, and room for every create always works (creates first): search between.
    low, high = 1, sum(1 for w in writes if w.action != "delete")
    while low < high:
        middle = (low + high) // 2
        if _simulate(existing, others, writes, limit + middle, protected) is None:
            low = middle + 1
        else:
            high = middle
    return Ordering((), short=low)


def _simulate(
    existing: Sequence[IpRange], others: int, writes: Sequence[W], limit: int, protected: list[Span]
) -> list[W] | None:
    current = [r.span for r in existing]
    creates = [w for w in writes if w.action != "delete"]
    deletes = [w for w in writes if w.action == "delete"]
    if deletes:  # creates that take over needed addresses from rules to be deleted go first: they free those deletes
        freeing = union(intersect(union(d.range.span for d in deletes), protected))
        if freeing:
            creates.sort(key=lambda c: not intersect([c.range.span], freeing))
    order: list[W] = []
    taken = 0  # creates[:taken] are in the order
    while taken < len(creates) or deletes:
        if taken < len(creates) and len(current) + others < limit:
            room = limit - others - len(current)  # every create that fits now goes in, in turn
            batch = creates[taken : taken + room]
            current += [c.range.span for c in batch]
            order += batch
            taken += len(batch)
            continue
        for i, delete in enumerate(deletes):
            rest = list(current)
            rest.remove(delete.range.span)
            if covers(rest, intersect([delete.range.span], protected)):
                current = rest
                order.append(deletes.pop(i))
                break
        else:
            return None
    return order
