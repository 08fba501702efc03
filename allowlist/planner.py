"""Pure planning: apps + existing rules -> Plan. No network, no clock, no randomness.

Rule names come from the range they hold (`allowlist-20.1.2.3-20.1.2.6`), so they never depend on
the order ARM lists addresses in, and a rule that exists under its name already holds what it says.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from allowlist.addresses import ipv4_number, merge_numbers
from allowlist.config import Scope, Settings
from allowlist.model import AppEgress, ExistingRule, IpRange, TargetRef
from allowlist.sources.appservice import Discovery, DiscoveryIssue
from allowlist.targets.base import Capabilities
from allowlist.targets.registry import CAPABILITIES

WIDEST_PREFIX = 16  # ranges wider than a /16 need allow_wide_ranges

Action = Literal["create", "update", "delete", "keep"]


@dataclass(frozen=True, order=True)
class Change:
    action: Action
    name: str
    range: IpRange
    previous: IpRange | None = None  # for an update: the range the rule holds now
    apps: tuple[str, ...] = ()  # IDs of the apps that need this range


@dataclass(frozen=True)
class TargetPlan:
    target: TargetRef
    rule_limit: int
    fingerprint: str  # of the rules read, so a saved plan can be refused when they changed
    changes: tuple[Change, ...] = ()  # creates and updates, then deletes; each group sorted by name
    keeps: tuple[Change, ...] = ()
    unmanaged: tuple[ExistingRule, ...] = ()
    withheld: tuple[Change, ...] = ()  # deletes not made because discovery was incomplete
    incomplete: tuple[str, ...] = ()  # why discovery for this target's scope is incomplete
    blockers: tuple[str, ...] = ()  # the plan cannot be applied (rule limit, over-wide range)
    threshold: str | None = None  # too many deletes: needs --force
    error: str | None = None  # the target's rules could not be read
    existing_count: int = 0

    def of(self, action: Action) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == action)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class Plan:
    settings: Settings
    targets: tuple[TargetPlan, ...]
    apps: tuple[AppEgress, ...] = ()  # every app in scope of at least one target
    issues: tuple[DiscoveryIssue, ...] = ()

    def count(self, action: Action) -> int:
        return sum(len(t.of(action)) for t in self.targets)

    @property
    def has_changes(self) -> bool:
        return any(t.has_changes for t in self.targets)

    @property
    def incomplete(self) -> bool:
        return any(t.incomplete or t.error for t in self.targets)

    def problems(self, force: bool) -> list[str]:
        """What stops apply before the first write; --force lifts only the delete threshold."""
        found = [f"{t.target.name}: {b}" for t in self.targets for b in t.blockers]
        if not force:
            found += [f"{t.target.name}: {t.threshold}" for t in self.targets if t.threshold]
        return found


def rule_name(prefix: str, rule_range: IpRange) -> str:
    return f"{prefix}{rule_range}"


def is_managed(name: str, prefix: str, capabilities: Capabilities) -> bool:
    if any(name.casefold() == p.casefold() for p in capabilities.protected_names):
        return False
    return name.casefold().startswith(prefix.casefold())


def fingerprint(rules: Sequence[ExistingRule]) -> str:
    lines = sorted(f"{r.name.casefold()}\t{r.range.first}\t{r.range.last}" for r in rules)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def desired_ranges(apps: Sequence[AppEgress]) -> dict[IpRange, tuple[str, ...]]:
    """The merged ranges the pinned apps need, each with the IDs of the apps inside it."""
    owners: dict[int, set[str]] = defaultdict(set)
    for app in apps:
        if app.pinned:
            for address in app.ipv4:
                owners[ipv4_number(address)].add(app.id)
    needed: dict[IpRange, tuple[str, ...]] = {}
    for rule_range in merge_numbers(owners):
        inside = set().union(*(owners[n] for n in range(rule_range.start, rule_range.end + 1)))
        needed[rule_range] = tuple(sorted(inside, key=str.lower))
    return needed


def plan_target(
    target: TargetRef,
    desired: Mapping[IpRange, tuple[str, ...]],
    existing: Sequence[ExistingRule],
    settings: Settings,
    capabilities: Capabilities,
    incomplete: Sequence[str] = (),
) -> TargetPlan:
    prefix = settings.prefix
    managed = {r.name.casefold(): r for r in existing if is_managed(r.name, prefix, capabilities)}
    unmanaged = tuple(sorted(r for r in existing if not is_managed(r.name, prefix, capabilities)))
    wanted = {rule_name(prefix, rng).casefold(): (rule_name(prefix, rng), rng, apps) for rng, apps in desired.items()}

    creates, updates, keeps = [], [], []
    for key, (name, rng, apps) in sorted(wanted.items()):
        current = managed.get(key)
        if current is None:
            creates.append(Change("create", name, rng, apps=apps))
        elif current.range != rng:  # someone edited our rule: put back what its name says
            updates.append(Change("update", current.name, rng, previous=current.range, apps=apps))
        else:
            keeps.append(Change("keep", current.name, rng, apps=apps))
    stale = [Change("delete", r.name, r.range) for key, r in sorted(managed.items()) if key not in wanted]
    deletes, withheld = ([], stale) if incomplete else (stale, [])

    blockers = []
    if not settings.allow_wide_ranges:
        blockers += [
            f"range {c.range} holds {c.range.size} addresses, wider than a /{WIDEST_PREFIX}; "
            "set allow_wide_ranges to permit it"
            for c in creates + updates
            if c.range.size > 2 ** (32 - WIDEST_PREFIX)
        ]
    final_count = len(existing) + len(creates) - len(deletes)
    if final_count > settings.rule_limit:
        blockers.append(
            f"would hold {final_count} firewall rules ({len(unmanaged)} not managed by allowlist), "
            f"over the limit of {settings.rule_limit}"
        )
    return TargetPlan(
        target=target,
        rule_limit=settings.rule_limit,
        fingerprint=fingerprint(existing),
        changes=tuple(creates + updates + deletes),
        keeps=tuple(keeps),
        unmanaged=unmanaged,
        withheld=tuple(withheld),
        incomplete=tuple(incomplete),
        blockers=tuple(blockers),
        threshold=_threshold(len(managed), len(deletes), len(wanted), settings),
        existing_count=len(existing),
    )


def _threshold(managed: int, deletes: int, wanted: int, settings: Settings) -> str | None:
    """octoDNS-style guard against a scope mistake wiping a firewall."""
    if deletes and deletes == managed and not wanted:
        return f"would remove all {managed} rules allowlist manages here and add none, force required"
    if managed >= settings.min_managed_for_percent and deletes * 100 > settings.max_delete_percent * managed:
        share = round(deletes * 100 / managed)
        return (
            f"Too many deletes, {share}% is over {settings.max_delete_percent:g}% ({deletes}/{managed}), force required"
        )
    return None


def incomplete_reasons(scope: Scope, target: TargetRef, discovery: Discovery, apps: Sequence[AppEgress]) -> list[str]:
    """Every gap in what discovery saw for this target's scope; any gap means no deletes."""
    reasons = []
    blocks = scope.blocks_for(target)
    for issue in discovery.issues:
        parts = issue.scope.split("/")
        if issue.scope == "/subscriptions":
            hit = any(not b.selector.subscriptions for b in blocks)
        elif len(parts) == 3:  # /subscriptions/ID
            hit = any(b.selector.covers_subscription(parts[2]) for b in blocks)
        else:  # a resource group whose slots could not be listed
            hit = any(a.id.lower().startswith(issue.scope.lower() + "/") for a in apps)
        if hit:
            reasons.append(f"{issue.scope}: {issue.message}")
    reasons += [f"{app.name} ({app.id}) is not pinned: {app.reason}" for app in apps if not app.pinned]
    return reasons


def build_plan(
    scope: Scope,
    discovery: Discovery,
    existing: Mapping[str, Sequence[ExistingRule] | str],
) -> Plan:
    """`existing` maps each target's key to its rules, or to why they could not be read."""
    targets = []
    in_scope: dict[str, AppEgress] = {}
    for target in scope.targets:
        blocks = scope.blocks_for(target)
        apps = [a for a in discovery.apps if any(b.selector.matches(a) for b in blocks)]
        in_scope.update((a.id.lower(), a) for a in apps)
        rules = existing[target.key]
        if isinstance(rules, str):
            targets.append(TargetPlan(target, scope.settings.rule_limit, fingerprint=fingerprint([]), error=rules))
            continue
        targets.append(
            plan_target(
                target,
                desired_ranges(apps),
                rules,
                scope.settings,
                CAPABILITIES[target.kind],
                incomplete_reasons(scope, target, discovery, apps),
            )
        )
    return Plan(
        settings=scope.settings,
        targets=tuple(targets),
        apps=tuple(sorted(in_scope.values(), key=lambda a: a.id.lower())),
        issues=discovery.issues,
    )
