"""Pure planning: apps + what each target holds -> Plan. No network, no clock, no randomness.

The same code plans every back end from its Capabilities: named ranges (SQL, PostgreSQL, MySQL) are
owned through the rule-name prefix; address lists (Cosmos DB, Storage) through the ledger in tags.
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
from allowlist.naming import list_entries, rule_name
from allowlist.sources.appservice import Discovery, DiscoveryIssue
from allowlist.targets.base import Capabilities, Firewall
from allowlist.targets.ledger import TAGS_MAX, ledger_tags
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
    warnings: tuple[str, ...] = ()  # worth knowing, not blocking (e.g. same-region Storage)

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


def is_managed(name: str, prefix: str, capabilities: Capabilities) -> bool:
    """Named rules: allowlist's are those with its prefix, never a service's own "allow Azure" rule."""
    if any(name.casefold() == p.casefold() for p in capabilities.protected_names):
        return False
    return name.casefold().startswith(prefix.casefold())


def fingerprint(firewall: Firewall) -> str:
    lines = sorted(f"{r.name.casefold()}\t{r.range.first}\t{r.range.last}" for r in firewall.rules)
    lines += sorted(f"owned\t{entry}" for entry in firewall.owned or ())
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
    firewall: Firewall,
    settings: Settings,
    capabilities: Capabilities,
    incomplete: Sequence[str] = (),
    apps: Sequence[AppEgress] = (),
) -> TargetPlan:
    prefix, existing = settings.prefix, firewall.rules
    wanted: dict[str, tuple[str, IpRange, tuple[str, ...]]] = {}
    if capabilities.named_ranges:
        mine = [r for r in existing if is_managed(r.name, prefix, capabilities)]
        for rng, needed_by in desired.items():
            name = rule_name(prefix, rng, capabilities)
            wanted[name.casefold()] = (name, rng, needed_by)
    else:
        mine = [r for r in existing if r.name.casefold() in (firewall.owned or ())]
        for rng, needed_by in desired.items():
            for entry, entry_range in list_entries(rng, capabilities):
                wanted[entry.casefold()] = (entry, entry_range, needed_by)
    managed = {r.name.casefold(): r for r in mine}
    present = {r.name.casefold(): r for r in existing}
    unmanaged = tuple(sorted(r for r in existing if r.name.casefold() not in managed))

    creates, updates, keeps = [], [], []
    for key, (name, rng, needed_by) in sorted(wanted.items(), key=lambda item: (item[1][1], item[0])):
        # An address list entry someone else added already serves: keep it, never claim it.
        current = managed.get(key) if capabilities.named_ranges else present.get(key)
        if current is None:
            creates.append(Change("create", name, rng, apps=needed_by))
        elif current.range != rng:  # someone edited our rule: put back what its name says
            updates.append(Change("update", current.name, rng, previous=current.range, apps=needed_by))
        else:
            keeps.append(Change("keep", current.name, rng, apps=needed_by))
    stale = [Change("delete", r.name, r.range) for r in sorted(mine, key=lambda r: (r.range, r.name.casefold()))
             if r.name.casefold() not in wanted]  # fmt: skip
    deletes, withheld = ([], stale) if incomplete else (stale, [])
    limit = settings.rule_limit or capabilities.default_rule_limit
    final_count = len(existing) + len(creates) - len(deletes)
    return TargetPlan(
        target=target,
        rule_limit=limit,
        fingerprint=fingerprint(firewall),
        changes=tuple(creates + updates + deletes),
        keeps=tuple(keeps),
        unmanaged=unmanaged,
        withheld=tuple(withheld),
        incomplete=tuple(incomplete),
        blockers=tuple(
            _blockers(settings, capabilities, creates + updates, final_count, limit, len(unmanaged))
            + _list_blockers(capabilities, firewall, len(existing), final_count, prefix, mine, creates, deletes)
        ),
        threshold=_threshold(len(managed), len(deletes), len(wanted), settings),
        existing_count=len(existing),
        warnings=firewall.notes + _region_warnings(capabilities, firewall, apps),
    )


def _blockers(
    settings: Settings,
    capabilities: Capabilities,
    writes: list[Change],
    final_count: int,
    limit: int,
    unmanaged: int,
) -> list[str]:
    found = [
        f"rule name '{c.name}' is not valid for a {capabilities.label}: change the prefix"
        for c in writes
        if capabilities.named_ranges and not capabilities.valid_name(c.name)
    ][:1]
    if not settings.allow_wide_ranges:
        found += [
            f"range {c.range} holds {c.range.size} addresses, wider than a /{WIDEST_PREFIX}; "
            "set allow_wide_ranges to permit it"
            for c in writes
            if c.range.size > 2 ** (32 - WIDEST_PREFIX)
        ]
    if final_count > limit:
        found.append(
            f"would hold {final_count} firewall rules ({unmanaged} not managed by allowlist), over the limit of {limit}"
        )
    return found


def _list_blockers(
    capabilities: Capabilities,
    firewall: Firewall,
    existing: int,
    final_count: int,
    prefix: str,
    mine: list[ExistingRule],
    creates: list[Change],
    deletes: list[Change],
) -> list[str]:
    if capabilities.named_ranges:
        return []
    found = []
    if capabilities.empty_list_means_open and existing == 0 and creates:
        found.append(
            "it has no IP rules, so it accepts every address: adding rules would turn its firewall on and shut "
            "out every other client; add a first rule yourself to opt in"
        )
    if capabilities.empty_list_means_open and existing > 0 and final_count == 0:
        found.append("removing these would leave no IP rules, which opens it to every address")
    owned_after = {r.name.casefold() for r in mine} - {c.name.casefold() for c in deletes}
    owned_after |= {c.name.casefold() for c in creates}
    ledger = len(ledger_tags(prefix, owned_after))
    if firewall.tag_count + ledger > TAGS_MAX:
        found.append(
            f"the ownership ledger needs {ledger} tags and the account has {firewall.tag_count} others, "
            f"over Azure's {TAGS_MAX} tags per resource"
        )
    return found


def _region_warnings(capabilities: Capabilities, firewall: Firewall, apps: Sequence[AppEgress]) -> tuple[str, ...]:
    if not capabilities.same_region_bypasses_rules or not firewall.location:
        return ()
    here = firewall.location.replace(" ", "").lower()
    return tuple(
        f"{app.name} runs in {app.location}, the account's own region: Storage IP rules do not apply to "
        "requests from the same region (use a virtual network rule or a private endpoint)"
        for app in apps
        if app.location.replace(" ", "").lower() == here
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
    existing: Mapping[str, Firewall | str],
) -> Plan:
    """`existing` maps each target's key to its firewall, or to why it could not be read."""
    targets = []
    in_scope: dict[str, AppEgress] = {}
    for target in scope.targets:
        blocks = scope.blocks_for(target)
        apps = [a for a in discovery.apps if any(b.selector.matches(a) for b in blocks)]
        in_scope.update((a.id.lower(), a) for a in apps)
        firewall = existing[target.key]
        capabilities = CAPABILITIES[target.kind]
        if isinstance(firewall, str):
            limit = scope.settings.rule_limit or capabilities.default_rule_limit
            targets.append(TargetPlan(target, limit, fingerprint=fingerprint(Firewall(())), error=firewall))
            continue
        targets.append(
            plan_target(
                target,
                desired_ranges(apps),
                firewall,
                scope.settings,
                capabilities,
                incomplete_reasons(scope, target, discovery, apps),
                apps,
            )
        )
    return Plan(
        settings=scope.settings,
        targets=tuple(targets),
        apps=tuple(sorted(in_scope.values(), key=lambda a: a.id.lower())),
        issues=discovery.issues,
    )
