"""Pure planning: apps + what each target holds -> Plan. No network, no clock, no randomness.

The same code plans every back end from its Capabilities: named ranges (SQL, PostgreSQL, MySQL) are
owned when their name parses as prefix + the range they hold; address lists (Cosmos DB, Storage)
through the ledger in tags. What the plan finds is a list of typed findings (`targetchecks.py` makes the
per-target ones); `gate.py` decides.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from allowlist.addresses import ipv4_number, merge_numbers
from allowlist.compress import Merge, total_cost
from allowlist.compress import compress as squeeze
from allowlist.findings import Finding, Kind
from allowlist.gate import FORCEABLE, REFUSING
from allowlist.model import AppEgress, Discovery, DiscoveryIssue, ExistingRule, IpRange, TargetRef
from allowlist.naming import list_entries, parse_rule_name, rule_name
from allowlist.ordering import order_writes
from allowlist.scope import Scope, Settings
from allowlist.targetchecks import delete_threshold, list_findings, region_warnings, write_findings
from allowlist.targets.base import Capabilities, Firewall
from allowlist.targets.registry import capabilities as capabilities_of

Action = Literal["create", "delete", "keep"]
Ownership = Literal["managed", "tampered", "prefixed", "foreign"]
_WARNING_KINDS = frozenset({Kind.TAMPERED, Kind.UNPARSED, Kind.WARNING})


@dataclass(frozen=True, order=True)
class Change:
    action: Action
    name: str
    range: IpRange
    apps: tuple[str, ...] = ()  # IDs of the apps that need this range


@dataclass(frozen=True)
class TargetPlan:
    target: TargetRef
    rule_limit: int
    fingerprint: str  # of the rules read, so a saved plan can be refused when they changed
    changes: tuple[Change, ...] = ()  # in the order apply writes them (see ordering.py)
    keeps: tuple[Change, ...] = ()
    unmanaged: tuple[ExistingRule, ...] = ()
    withheld: tuple[Change, ...] = ()  # deletes not made because discovery was incomplete
    findings: tuple[Finding, ...] = ()
    error: str | None = None  # the target's rules could not be read
    existing_count: int = 0
    merges: tuple[Merge, ...] = ()  # rules merged from several ranges to fit the limit (compress)
    entries: tuple[str, ...] = ()  # access restrictions as read (JSON), so a render can write the list whole

    def of(self, action: Action) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == action)

    def _messages(self, kinds: frozenset[Kind]) -> tuple[str, ...]:
        return tuple(f.message for f in self.findings if f.kind in kinds)

    @property
    def incomplete(self) -> tuple[str, ...]:
        return self._messages(frozenset({Kind.INCOMPLETE}))

    @property
    def blockers(self) -> tuple[str, ...]:
        return self._messages(REFUSING | FORCEABLE)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._messages(_WARNING_KINDS)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class Plan:
    settings: Settings
    targets: tuple[TargetPlan, ...]
    apps: tuple[AppEgress, ...] = ()  # every app in scope of at least one target
    issues: tuple[DiscoveryIssue, ...] = ()
    scope: Scope | None = None  # what was discovered, so a saved plan can be checked against today's apps
    extra: tuple[Finding, ...] = ()  # findings about the plan as a whole (a saved plan's own check)

    def count(self, action: Action) -> int:
        return sum(len(t.of(action)) for t in self.targets)

    @property
    def has_changes(self) -> bool:
        return any(t.has_changes for t in self.targets)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for t in self.targets for f in t.findings) + self.extra

    @property
    def fully_read(self) -> bool:
        """Every scope and every target was read: only then may a plan say "No changes"."""
        return not self.issues and not any(f.kind in (Kind.READ_FAILURE, Kind.INCOMPLETE) for f in self.findings)


def _order(r: IpRange) -> tuple[int, int, int]:
    """IpRange's own order as plain numbers: sorting by it compares in C, not through the dataclass's __lt__
    (called about 190,000 times in a 10,000-app plan)."""
    return r.start, r.end, r.version


def _rule_order(r: ExistingRule) -> tuple[str, int, int, int]:
    return r.name, *_order(r.range)


def ownership(name: str, held: IpRange, prefix: str, capabilities: Capabilities) -> Ownership:
    """Named rules: allowlist's only when the name parses as prefix + range and holds that range."""
    if any(name.casefold() == p.casefold() for p in capabilities.protected_names):
        return "foreign"
    if rule_name(prefix, held, capabilities).casefold() == name.casefold():
        return "managed"  # the common case, without parsing: one name per range, and this is its name
    encoded = parse_rule_name(prefix, name, capabilities)
    if encoded is None:
        return "prefixed" if name.casefold().startswith(prefix.casefold()) else "foreign"
    return "managed" if encoded == held else "tampered"


def fingerprint(firewall: Firewall) -> str:
    lines = sorted(f"{r.name.casefold()}\t{r.range.first}\t{r.range.last}" for r in firewall.rules)
    lines += sorted(f"owned\t{entry}" for entry in firewall.owned or ())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


STATIC = "static:"  # how fixed addresses from a [[sync]] block appear among the apps a range serves


def desired_ranges(
    apps: Sequence[AppEgress],
    ipv6: bool = False,
    static: Sequence[tuple[IpRange, str]] = (),
    in_id_order: bool = False,
) -> dict[IpRange, tuple[str, ...]]:
    """The merged ranges the pinned apps need, each with the IDs of the apps inside it; IPv6 ranges too
    when the back end holds IPv6 rules; and fixed ranges from config, each named `static:LABEL`.
    in_id_order: the apps come sorted by ID already (as apps_by_target hands them out), so are not sorted."""
    # Apps on one stamp share their addresses, so the work is done per stamp (each distinct address set),
    # however many apps hold it: at 10,000 apps a target's 450 apps sit on about 18 stamps. Apps are
    # numbered in ID order, so each range's apps come out sorted by sorting numbers.
    pinned = [a for a in apps if a.pinned]
    if in_id_order:
        ids = [a.id for a in pinned]
        position: Iterable[int] = range(len(ids))
    else:  # an app listed twice is one app
        ids = sorted(dict.fromkeys(a.id for a in pinned), key=str.lower)
        number = {app_id: n for n, app_id in enumerate(ids)}
        position = [number[a.id] for a in pinned]
    stamps: dict[Any, list[int]] = defaultdict(list)  # by IPv4 tuple, or (IPv4, IPv6) tuples with IPv6 rules
    for n, app in zip(position, pinned, strict=True):
        stamps[(app.ipv4, app.ipv6) if ipv6 else app.ipv4].append(n)
    # Most stamps hold one app (one number): sorting and a generator for each cost more than the rest.
    members = [numbers if len(numbers) == 1 else sorted(set(numbers)) for numbers in stamps.values()]
    held = [tuple(map(ids.__getitem__, numbers)) for numbers in members]  # one tuple per stamp, shared by its ranges
    owners: dict[int, list[int]] = defaultdict(list)  # address -> the stamps that hold it
    owners6: dict[int, list[int]] = defaultdict(list)
    for stamp, key in enumerate(stamps):
        v4, v6 = key if ipv6 else (key, ())
        for n in _ipv4_numbers(v4):
            owners[n].append(stamp)
        for address in v6:
            owners6[int(ipaddress.IPv6Address(address))].append(stamp)
    needed: dict[IpRange, tuple[str, ...]] = {}
    for version, found in ((4, owners), (6, owners6)):
        for rule_range in merge_numbers(found, version):
            start, end = rule_range.start, rule_range.end
            inside = found[start] if start == end else {s for n in range(start, end + 1) for s in found[n]}
            if len(inside) == 1:
                needed[rule_range] = held[next(iter(inside))]
            else:  # an address's stamps are distinct; a range's may repeat
                needed[rule_range] = tuple(ids[n] for n in sorted({n for s in inside for n in members[s]}))
    return _with_static(needed, [(r, label) for r, label in static if ipv6 or r.version == 4])


@lru_cache(maxsize=65536)
def _ipv4_numbers(addresses: tuple[str, ...]) -> tuple[int, ...]:
    """A stamp's addresses as numbers, parsed once per run however many targets its apps feed."""
    return tuple(ipv4_number(a) for a in addresses)


def _with_static(
    needed: dict[IpRange, tuple[str, ...]], static: Sequence[tuple[IpRange, str]]
) -> dict[IpRange, tuple[str, ...]]:
    """Fixed ranges joined to the apps' ranges: overlapping or adjacent ones become one range."""
    if not static:
        return needed
    items = sorted([(r, set(who)) for r, who in needed.items()] + [(r, {STATIC + label}) for r, label in static],
                   key=lambda item: (item[0].version, item[0].start))  # fmt: skip
    merged: list[tuple[IpRange, set[str]]] = []
    for rng, who in items:
        last = merged[-1][0] if merged else None
        if last is not None and last.version == rng.version and rng.start <= last.end + 1:
            merged[-1] = (IpRange(last.start, max(last.end, rng.end), rng.version), merged[-1][1] | who)
        else:
            merged.append((rng, set(who)))
    return {rng: tuple(sorted(who, key=str.lower)) for rng, who in merged}


def plan_target(
    target: TargetRef,
    desired: Mapping[IpRange, tuple[str, ...]],
    firewall: Firewall,
    settings: Settings,
    capabilities: Capabilities,
    incomplete: Sequence[str] = (),
    apps: Sequence[AppEgress] = (),
    compress: bool = False,
) -> TargetPlan:
    prefix, existing, tid = settings.prefix, firewall.rules, target.id
    findings = [Finding(Kind.INCOMPLETE, reason, tid) for reason in incomplete]
    findings += [Finding(Kind.WARNING, note, tid) for note in firewall.notes]
    wanted: dict[str, tuple[str, IpRange, tuple[str, ...]]] = {}
    limit = settings.rule_limit or capabilities.default_rule_limit
    if capabilities.named_ranges:
        owner = {r.name.casefold(): ownership(r.name, r.range, prefix, capabilities) for r in existing}
        mine = [r for r in existing if owner[r.name.casefold()] == "managed"]
    else:
        mine = [r for r in existing if r.name.casefold() in (firewall.owned or ())]
    # Rules kept free for people, and every rule allowlist does not own, come off the limit first.
    budget = limit - settings.headroom - (firewall.count - len(mine))
    desired, merges, fit = fit_under_limit(desired, budget, settings, capabilities, compress)
    if merges:
        extra = sum(m.extra for m in merges)
        findings.append(Finding(Kind.WARNING, f"compressed to fit {budget} rules: {len(merges)} merged rule(s) "
                                f"open {extra} extra address(es) no app asked for", tid))  # fmt: skip
    if capabilities.named_ranges:
        for r in existing:
            if owner[r.name.casefold()] == "tampered":
                findings.append(Finding(Kind.TAMPERED, f"rule '{r.name}' holds {r.range}, not the range its name "
                                        "says: edited by someone, left alone", tid))  # fmt: skip
            elif owner[r.name.casefold()] == "prefixed":
                findings.append(Finding(Kind.UNPARSED, f"rule '{r.name}' carries the prefix but is not a name "
                                        "allowlist writes: not managed, left alone", tid))  # fmt: skip
        for rng, needed_by in desired.items():
            name = rule_name(prefix, rng, capabilities)
            wanted[name.casefold()] = (name, rng, needed_by)
    else:
        for rng, needed_by in desired.items():
            for entry, entry_range in list_entries(rng, capabilities):
                wanted[entry.casefold()] = (entry, entry_range, needed_by)
    managed = {r.name.casefold(): r for r in mine}
    present = {r.name.casefold(): r for r in existing}
    unmanaged = tuple(sorted((r for r in existing if r.name.casefold() not in managed), key=_rule_order))

    creates, keeps = [], []
    for key, (name, rng, needed_by) in sorted(wanted.items(), key=lambda item: (*_order(item[1][1]), item[0])):
        # An address list entry someone else added already serves: keep it, never claim it.
        current = managed.get(key) if capabilities.named_ranges else present.get(key)
        if current is not None:
            keeps.append(Change("keep", current.name, rng, apps=needed_by))
        elif key in present:  # a rule of that name holds another range: never overwrite it
            findings.append(Finding(Kind.NAME_TAKEN, f"cannot create '{name}' for {rng}: a rule of that name holds "
                                    f"{present[key].range}; rename or delete it", tid))  # fmt: skip
        else:
            creates.append(Change("create", name, rng, apps=needed_by))
    by_range = sorted(mine, key=lambda r: (*_order(r.range), r.name.casefold()))
    stale = [Change("delete", r.name, r.range) for r in by_range
             if r.name.casefold() not in wanted]  # fmt: skip
    deletes, withheld = ([], stale) if incomplete else (stale, [])
    final_count = firewall.count + len(creates) - len(deletes)
    changes: list[Change] = creates + deletes
    findings += write_findings(settings, capabilities, creates, final_count, limit, len(unmanaged), tid, fit)
    if capabilities.named_ranges and final_count <= limit:
        ordering = order_writes([r.range for r in existing], len(firewall.opaque), changes, limit, list(desired))
        changes = list(ordering.writes)
        if ordering.short:
            findings.append(Finding(Kind.NO_ROOM, f"at its limit of {limit} rules, no order of writes keeps every "
                                    f"needed address covered: it needs {ordering.short} more free rule(s) (remove "
                                    "rules, or raise rule_limit if the server allows more)", tid))  # fmt: skip
    findings += list_findings(capabilities, firewall, final_count, prefix, mine, creates, deletes, tid)
    threshold = delete_threshold(len(managed), len(deletes), len(wanted), settings)
    if threshold:
        findings.append(Finding(Kind.DELETE_THRESHOLD, threshold, tid))
    findings += [Finding(Kind.WARNING, w, tid) for w in region_warnings(capabilities, firewall, apps)]
    findings += [
        Finding(Kind.WARNING, f"{a.name} is not pinned ({a.reason}), acknowledged: {a.acknowledged}", tid)
        for a in apps
        if not a.pinned and a.acknowledged
    ]
    return TargetPlan(
        target=target,
        rule_limit=limit,
        fingerprint=fingerprint(firewall),
        changes=tuple(changes),
        keeps=tuple(keeps),
        unmanaged=unmanaged,
        withheld=tuple(withheld),
        findings=tuple(findings),
        existing_count=firewall.count,
        merges=merges,
        entries=firewall.entries,
    )


def fit_under_limit(
    desired: Mapping[IpRange, tuple[str, ...]],
    budget: int,
    settings: Settings,
    capabilities: Capabilities,
    compress: bool,
) -> tuple[Mapping[IpRange, tuple[str, ...]], tuple[Merge, ...], str]:
    """Merge IPv4 ranges by least exposure when they do not fit (with `compress`); otherwise say what
    `--compress` would cost. Returns the ranges to write, the merges, and a hint for the limit message."""

    # What one range costs of the limit: list entries where the back end keeps a list; None, one rule each.
    per_range = None if capabilities.named_ranges else (lambda r: len(list_entries(r, capabilities)))
    v4 = sorted((r for r in desired if r.version == 4), key=_order)
    v6_cost = total_cost([r for r in desired if r.version == 6], per_range)
    if total_cost(v4, per_range) + v6_cost <= budget:
        return desired, (), ""
    found = squeeze(v4, budget - v6_cost, settings.max_merge_gap, settings.allow_wide_ranges, per_range)
    if found is None:
        return (
            desired,
            (),
            (
                f"; even merging neighbours (gaps up to max_merge_gap = {settings.max_merge_gap} addresses, never over "
                "private or reserved ones) cannot fit it: raise rule_limit if the server allows more, or split the apps"
            ),
        )
    if not compress:
        return desired, (), f"; --compress (compress = true) would fit it by opening {found.extra} extra address(es)"
    merged: dict[IpRange, tuple[str, ...]] = {r: needed for r, needed in desired.items() if r.version == 6}
    starts = [r.start for r in v4]
    for rule_range in found.ranges:  # each merged rule holds a run of whole parts: find it by bisection
        i = bisect.bisect_left(starts, rule_range.start)
        if v4[i] == rule_range:  # a range no merge touched keeps its apps
            merged[rule_range] = desired[rule_range]
            continue
        inside: set[str] = set()
        while i < len(v4) and v4[i].end <= rule_range.end:
            inside.update(desired[v4[i]])
            i += 1
        merged[rule_range] = tuple(sorted(inside, key=str.lower))
    return merged, found.merges, ""


def static_ranges(scope: Scope, target: TargetRef) -> list[tuple[IpRange, str]]:
    """The fixed addresses the target's [[sync]] blocks declare, with their labels."""
    found = []
    for block in scope.blocks_for(target):
        for text in block.addresses:
            network = ipaddress.ip_network(text, strict=False)
            found.append((IpRange(int(network[0]), int(network[-1]), network.version), block.label or block.name))
    return found


def incomplete_reasons(scope: Scope, target: TargetRef, discovery: Discovery, apps: Sequence[AppEgress]) -> list[str]:
    """Every gap in what discovery saw for this target's scope; any gap means no deletes."""
    reasons = []
    blocks = scope.blocks_for(target)
    for issue in discovery.issues:
        parts = issue.scope.split("/")
        if not issue.scope.lower().startswith("/subscriptions"):  # a tenant-wide query: it feeds every target
            hit = True
        elif issue.scope == "/subscriptions":
            hit = any(not b.selector.subscriptions for b in blocks if b.selects_apps)
        elif len(parts) == 3:  # /subscriptions/ID
            hit = any(b.selector.covers_subscription(parts[2]) for b in blocks)
        else:  # /subscriptions/ID/resourceGroups/NAME, whose sites could not be listed: none of them is known,
            # so every block that may select an app there is hit
            hit = any(b.selector.covers_group(parts[2], parts[4]) for b in blocks if b.selects_apps)
        if hit:
            reasons.append(f"{issue.scope}: {issue.message}")
    reasons += [
        f"{app.name} ({app.id}) is not pinned: {app.reason}" for app in apps if not app.pinned and not app.acknowledged
    ]
    return reasons


def build_plan(
    scope: Scope,
    discovery: Discovery,
    existing: Mapping[str, Firewall | str],
) -> Plan:
    """`existing` maps each target's key to its firewall, or to why it could not be read."""
    targets = []
    in_scope: dict[int, AppEgress] = {}  # by identity: apps_by_target hands out one object per app ID
    feeding = scope.apps_by_target(discovery.apps)
    ranges_for: dict[tuple[Any, ...], dict[IpRange, tuple[str, ...]]] = {}
    for target in scope.targets:
        apps = feeding[target.key]
        # In C: hundreds of apps, for each of hundreds of targets.
        in_scope.update(zip(map(id, apps), apps, strict=True))
        firewall = existing[target.key]
        capabilities = capabilities_of(target.kind)
        if isinstance(firewall, str):
            limit = scope.settings.rule_limit or capabilities.default_rule_limit
            failure = Finding(Kind.READ_FAILURE, firewall, target.id)
            targets.append(TargetPlan(target, limit, fingerprint(Firewall(())), findings=(failure,), error=firewall))
            continue
        # Targets fed by the same apps (a [[sync]] block's several servers, say) need the same ranges.
        static = static_ranges(scope, target)
        key = (tuple(map(id, apps)), capabilities.ipv6, tuple(static))
        desired = ranges_for.get(key)
        if desired is None:
            desired = ranges_for[key] = desired_ranges(apps, capabilities.ipv6, static, in_id_order=True)
        targets.append(
            plan_target(
                target,
                desired,
                firewall,
                scope.settings,
                capabilities,
                incomplete_reasons(scope, target, discovery, apps),
                apps,
                scope.settings.compress or any(b.compress for b in scope.blocks_for(target)),
            )
        )
    return Plan(
        settings=scope.settings,
        targets=tuple(targets),
        apps=tuple(sorted(in_scope.values(), key=lambda a: a.id.lower())),
        issues=discovery.issues,
        scope=scope,
    )
