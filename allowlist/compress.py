"""Fitting a target's ranges under its rule limit by merging neighbours, opening as few extra addresses
as possible. Pure.

Merging neighbouring ranges into one rule opens the addresses of the gap between them. To go from n
ranges to m rules, n - m gaps must close; the cost is their total size, so closing the n - m smallest
gaps is optimal (an exchange argument: any other choice swaps a closed gap for a smaller open one).
A gap never closes when it is wider than `max_gap`, when the merged rule would be wider than a /16
(unless wide ranges are allowed), or when it holds private or reserved addresses. With those caps
closing smallest-first is still what this does, in a fixed order (gap size, then address), so the
same inputs always give the same rules and a small change moves only the merges near it.
"""

from __future__ import annotations

import bisect
import heapq
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from allowlist.model import IpRange

WIDEST = 2**16  # a /16
# Never opened by a merge: RFC 1918, shared, loopback, link-local, documentation, benchmarking,
# multicast and reserved blocks (the addresses `is_global` rejects).
RESERVED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip
_RESERVED_SPANS = tuple(sorted((int(n.network_address), int(n.broadcast_address)) for n in RESERVED))
_RESERVED_STARTS = [lo for lo, _ in _RESERVED_SPANS]


@dataclass(frozen=True)
class Merge:
    """One rule made of several ranges, and what it opens that no app asked for."""

    range: IpRange
    parts: tuple[IpRange, ...]

    @property
    def extra_ranges(self) -> tuple[IpRange, ...]:
        return tuple(IpRange(a.end + 1, b.start - 1) for a, b in zip(self.parts, self.parts[1:], strict=False))

    @property
    def extra(self) -> int:
        return sum(r.size for r in self.extra_ranges)


@dataclass(frozen=True)
class Compressed:
    ranges: tuple[IpRange, ...]  # what to write, sorted
    merges: tuple[Merge, ...]  # the rules that hold more than one original range

    @property
    def extra(self) -> int:
        return sum(m.extra for m in self.merges)


def _closable(left: IpRange, right: IpRange, max_gap: int) -> bool:
    gap_start, gap_end = left.end + 1, right.start - 1
    if gap_end - gap_start + 1 > max_gap:
        return False
    # The spans are sorted and disjoint: only the last one starting at or before the gap's end can reach it.
    i = bisect.bisect_right(_RESERVED_STARTS, gap_end) - 1
    return i < 0 or _RESERVED_SPANS[i][1] < gap_start


def total_cost(ranges: Sequence[IpRange], cost: Callable[[IpRange], int] | None) -> int:
    """What `ranges` take of a limit: `cost` of each (list entries), or one rule each when it is None."""
    return len(ranges) if cost is None else sum(map(cost, ranges))


def compress(
    ranges: Sequence[IpRange],
    budget: int,
    max_gap: int = 256,
    allow_wide: bool = False,
    cost: Callable[[IpRange], int] | None = None,
) -> Compressed | None:
    """Merge disjoint IPv4 ranges until `cost` (rules or list entries; None: one rule per range) fits
    `budget`; None when the caps leave no way to fit. O(n log n): each gap is looked at once, in
    order of size, and a gap too wide to close now never becomes closable (merged rules only grow)."""
    items = sorted(ranges, key=lambda r: r.start)  # disjoint: by start alone, compared in C
    total = total_cost(items, cost)
    if total <= budget:
        return Compressed(tuple(items), ())
    # Union-find over the items; each group knows its first and last item.
    parent = list(range(len(items)))
    first, last = list(range(len(items))), list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def extent(g: int) -> IpRange:
        return IpRange(items[first[g]].start, items[last[g]].end)

    gaps = [(items[i + 1].start - items[i].end - 1, items[i].end, i) for i in range(len(items) - 1)
            if _closable(items[i], items[i + 1], max_gap)]  # fmt: skip
    heapq.heapify(gaps)
    while total > budget:
        if not gaps:
            return None
        _, _, i = heapq.heappop(gaps)
        left, right = root(i), root(i + 1)
        start, end = items[first[left]].start, items[last[right]].end
        if not allow_wide and end - start + 1 > WIDEST:
            continue
        if cost is None:  # one rule each: two become one
            total -= 1
        else:
            total += cost(IpRange(start, end)) - cost(extent(left)) - cost(extent(right))
        parent[right] = left
        last[left] = last[right]
    groups: dict[int, list[IpRange]] = {}
    for i, item in enumerate(items):
        groups.setdefault(root(i), []).append(item)
    merged_ranges: list[IpRange] = []
    merges: list[Merge] = []
    for group in sorted(groups.values(), key=lambda g: g[0].start):
        if len(group) == 1:
            merged_ranges.append(group[0])
        else:
            merges.append(Merge(IpRange(group[0].start, group[-1].end), tuple(group)))
            merged_ranges.append(merges[-1].range)
    return Compressed(tuple(merged_ranges), tuple(merges))
