"""What a run covers, as data: Settings, the [[sync]] blocks (targets and the app selector that feeds them),
declared egress and acknowledgements; and which apps feed which target. `config.py` builds it from TOML
and flags."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from allowlist.errors import ConfigError
from allowlist.model import AppEgress, TargetRef

AddressSource = Literal["possible", "current"]
Source = Literal["arm", "resource-graph"]
RULE_NAME_FORBIDDEN = re.compile(r"[<>*%&:;\\/?]")


@dataclass(frozen=True)
class Settings:
    """Policy (what a plan decides, recorded in a saved plan) and runtime (how a run executes, not recorded)."""

    # Policy
    prefix: str = "allowlist-"
    addresses: AddressSource = "possible"
    max_delete_percent: float = 30.0
    min_managed_for_percent: int = 10  # below this many managed rules the share check does not apply
    rule_limit: int | None = None  # None: each back end's own (SQL 128, Storage 400 ...)
    allow_wide_ranges: bool = False  # ranges wider than a /16 need this
    # Functions on Consumption / Elastic Premium and Logic Apps Standard: their list is the documented
    # superset but "not a definitive allowlist"; true: use it (with a warning), false: treat as unknown.
    functions_pinned: bool = True
    # Over the rule limit: merge neighbouring ranges by least exposure instead of refusing (opt in).
    compress: bool = False
    max_merge_gap: int = 256  # never merge across a gap of more addresses than this
    headroom: int = 0  # rules kept free for people under every limit
    restriction_priority: int = 65000  # App Service access restrictions allowlist writes take this priority
    # Runtime
    concurrency: int = 8
    retry_total: int = 6
    retry_backoff: float = 0.8
    poll_interval: float = 5.0  # seconds between polls of a long-running write (unless ARM says)
    operation_timeout: float = 900.0  # longest wait for one long-running write
    timeout: float | None = None  # longest a whole run may take; None: no bound
    lease_seconds: float = 600.0  # how long a target's lease lasts unless renewed
    source: Source = "arm"  # "arm": paged lists per subscription; "resource-graph": a few paged queries

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    def policy(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in POLICY_KEYS}


POLICY_KEYS = (
    "prefix",
    "addresses",
    "max_delete_percent",
    "min_managed_for_percent",
    "rule_limit",
    "allow_wide_ranges",
    "functions_pinned",
    "compress",
    "max_merge_gap",
    "headroom",
    "restriction_priority",
)


def check_prefix(prefix: str) -> None:
    if not prefix or not prefix.strip():
        raise ConfigError("the rule prefix cannot be empty: it is how allowlist knows which rules it owns")
    if RULE_NAME_FORBIDDEN.search(prefix):
        raise ConfigError(f"the rule prefix '{prefix}' contains a character SQL rule names cannot hold (<>*%&:;\\/?)")
    if len(prefix) > 96:
        raise ConfigError(f"the rule prefix '{prefix}' is longer than 96 characters; rule names may hold 128")


@dataclass(frozen=True)
class Selector:
    """Which apps: every field narrows; empty means any. Globs match without case."""

    subscriptions: tuple[str, ...] = ()  # empty: every subscription the credential can see
    resource_groups: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # site names; "site/slot" for a slot
    tags: tuple[tuple[str, str], ...] = ()  # every tag must match; value "*" means "present"
    kinds: tuple[str, ...] = ()  # tokens of ARM's kind: app, functionapp, linux, container ...
    slots: bool = True

    def covers_subscription(self, subscription_id: str) -> bool:
        return not self.subscriptions or subscription_id.lower() in self.subscriptions

    def covers_group(self, subscription_id: str, resource_group: str) -> bool:
        return self.covers_subscription(subscription_id) and _any_glob(self.resource_groups, resource_group)

    def matches_site(self, app: AppEgress, by_name: bool = True) -> bool:
        """Everything but the slot rule, so slots are only listed for sites in scope. Cheapest tests first:
        most apps fail on their subscription. by_name=False: every test but the names'."""
        if not self.covers_subscription(app.subscription_id):
            return False
        if not _any_glob(self.resource_groups, app.resource_group):
            return False
        if by_name and self.names and not (_any_glob(self.names, app.site_name) or _any_glob(self.names, app.name)):
            return False
        if self.tags:
            tags = {k.lower(): v for k, v in app.tags}
            if not all(k.lower() in tags and (v == "*" or tags[k.lower()] == v) for k, v in self.tags):
                return False
        return not self.kinds or any(t.strip().lower() in self.kinds for t in app.kind.split(","))

    def matches(self, app: AppEgress) -> bool:
        return self.matches_site(app) and (self.slots or app.slot is None)

    def may_select_slots_of(self, site: AppEgress) -> bool:
        """Whether a slot of this site could be selected, before its slots are listed: as the site matches,
        except that a name may name the slot alone ("web/staging", or a wildcard that could reach one)."""
        if not self.slots:
            return False
        if not self.names or _any_glob(self.names, site.site_name):
            return self.matches_site(site)
        return any(_may_name_a_slot(p, site.site_name) for p in self.names) and self.matches_site(site, by_name=False)


def _may_name_a_slot(pattern: str, site: str) -> bool:
    """Whether `pattern` could match some "site/slot": its site part matches, or a wildcard could span the
    "/" (then the slots are listed to be sure)."""
    if "/" in pattern:
        return fnmatch.fnmatchcase(site.lower(), pattern.split("/", 1)[0].lower())
    return any(c in pattern for c in "*?[")


def _any_glob(patterns: tuple[str, ...], value: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


@dataclass(frozen=True)
class SyncBlock:
    name: str
    targets: tuple[TargetRef, ...]
    selector: Selector
    compress: bool = False  # merge ranges to fit the limit on this block's targets
    addresses: tuple[str, ...] = ()  # fixed addresses or CIDRs (office VPN, build agents), owned like app ones
    label: str = ""  # what those addresses are, shown in plans
    selects_apps: bool = True  # False: a block of fixed addresses only


@dataclass(frozen=True)
class DeclaredEgress:
    """Egress ARM cannot show (a third-party firewall, forced tunnelling), declared in config."""

    name: str
    addresses: tuple[str, ...]  # public IPv4 addresses or CIDRs
    subnets: tuple[str, ...] = ()  # integration subnets (resource IDs, lower-case) ...
    selector: Selector | None = None  # ... or the apps it applies to


@dataclass(frozen=True)
class Acknowledgement:
    """Apps known not to be pinned: still reported, but they no longer withhold deletes or fail the run."""

    selector: Selector
    reason: str


@dataclass(frozen=True)
class Scope:
    settings: Settings = field(default_factory=Settings)
    blocks: tuple[SyncBlock, ...] = ()
    egress: tuple[DeclaredEgress, ...] = ()
    acknowledged: tuple[Acknowledgement, ...] = ()

    @property
    def targets(self) -> tuple[TargetRef, ...]:
        unique = {t.key: t for block in self.blocks for t in block.targets}
        return tuple(sorted(unique.values(), key=lambda t: t.key))

    @property
    def all_subscriptions(self) -> bool:
        return any(not b.selector.subscriptions for b in self.blocks if b.selects_apps)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return tuple(sorted({s for b in self.blocks if b.selects_apps for s in b.selector.subscriptions}))

    def blocks_for(self, target: TargetRef) -> tuple[SyncBlock, ...]:
        return self._blocks_by_target.get(target.key, ())

    @functools.cached_property
    def _blocks_by_target(self) -> dict[str, tuple[SyncBlock, ...]]:
        found: dict[str, list[SyncBlock]] = {}
        for block in self.blocks:
            for key in dict.fromkeys(t.key for t in block.targets):
                found.setdefault(key, []).append(block)
        return {key: tuple(blocks) for key, blocks in found.items()}

    @functools.cached_property
    def _by_subscription(self) -> tuple[dict[str, list[int]], list[int]]:
        by_subscription: dict[str, list[int]] = {}
        anywhere: list[int] = []
        for i, block in enumerate(self.blocks):
            if not block.selects_apps:
                continue
            for sub in block.selector.subscriptions:
                by_subscription.setdefault(sub, []).append(i)
            if not block.selector.subscriptions:
                anywhere.append(i)
        return by_subscription, anywhere

    def candidate_blocks(self, subscription_id: str) -> list[int]:
        """The blocks that may select an app of this subscription: an app is never matched against the rest."""
        by_subscription, anywhere = self._by_subscription
        return by_subscription.get(subscription_id, []) + anywhere

    def selects(self, app: AppEgress) -> bool:
        return any(self.blocks[i].selector.matches(app) for i in self.candidate_blocks(app.subscription_id))

    def wants_slots_of(self, site: AppEgress) -> bool:
        return any(
            self.blocks[i].selector.may_select_slots_of(site) for i in self.candidate_blocks(site.subscription_id)
        )

    def apps_by_target(self, apps: Sequence[AppEgress]) -> dict[str, list[AppEgress]]:
        """Which apps feed each target, in ID order, deciding each app's blocks once (never apps x targets)."""
        by_key = {a.id.lower(): a for a in apps}
        ordered = [by_key[k] for k in sorted(by_key)]  # an app is its position here from now on
        in_subscription: dict[str, list[int]] = {}
        for n, app in enumerate(ordered):
            in_subscription.setdefault(app.subscription_id, []).append(n)
        # Blocks whose selectors differ only in their subscriptions (the candidates all cover the app's)
        # decide alike: each distinct rest is asked once per app, and a subscription's apps that fit it go
        # to each of its blocks' targets in one step, not app by app.
        distinct: dict[Selector, int] = {}
        rest_of = [distinct.setdefault(replace(b.selector, subscriptions=()), len(distinct)) for b in self.blocks]
        rests = list(distinct)
        fed = [dict.fromkeys(t.key for t in b.targets) for b in self.blocks]
        found: dict[str, set[int]] = {t.key: set() for t in self.targets}
        for subscription, members in in_subscription.items():
            fitting: dict[int, list[int]] = {}
            for i in self.candidate_blocks(subscription):
                rest = rest_of[i]
                if rest not in fitting:
                    fitting[rest] = [n for n in members if rests[rest].matches(ordered[n])]
                for target in fed[i]:
                    found[target].update(fitting[rest])
        return {key: [ordered[n] for n in sorted(members)] for key, members in found.items()}
