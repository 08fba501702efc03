"""TOML config (and one-off flags) -> Scope: which apps feed which targets, with which settings.

Errors name the file, the key and the problem, e.g. `allowlist.toml: sync[1].targets[0]: ...`.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from allowlist.errors import ConfigError
from allowlist.model import AppEgress, TargetRef
from allowlist.targets.registry import parse_target

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

    def matches_site(self, app: AppEgress) -> bool:
        """Everything but the slot rule, so slots are only listed for sites in scope. Cheapest tests first:
        most apps fail on their subscription."""
        if not self.covers_subscription(app.subscription_id):
            return False
        if not _any_glob(self.resource_groups, app.resource_group):
            return False
        if self.names and not (_any_glob(self.names, app.site_name) or _any_glob(self.names, app.name)):
            return False
        if self.tags:
            tags = {k.lower(): v for k, v in app.tags}
            if not all(k.lower() in tags and (v == "*" or tags[k.lower()] == v) for k, v in self.tags):
                return False
        return not self.kinds or any(t.strip().lower() in self.kinds for t in app.kind.split(","))

    def matches(self, app: AppEgress) -> bool:
        return self.matches_site(app) and (self.slots or app.slot is None)


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
        return tuple(b for b in self.blocks if any(t.key == target.key for t in b.targets))

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
            self.blocks[i].selector.slots and self.blocks[i].selector.matches_site(site)
            for i in self.candidate_blocks(site.subscription_id)
        )

    def apps_by_target(self, apps: Sequence[AppEgress]) -> dict[str, list[AppEgress]]:
        """Which apps feed each target, deciding each app's blocks once (never apps x targets)."""
        per_block: list[list[AppEgress]] = [[] for _ in self.blocks]
        for app in apps:
            for i in self.candidate_blocks(app.subscription_id):
                if self.blocks[i].selector.matches(app):
                    per_block[i].append(app)
        found: dict[str, dict[str, AppEgress]] = {t.key: {} for t in self.targets}
        for block, members in zip(self.blocks, per_block, strict=True):
            for target in {t.key for t in block.targets}:
                found[target].update((a.id.lower(), a) for a in members)
        return {key: sorted(members.values(), key=lambda a: a.id.lower()) for key, members in found.items()}


SETTINGS_KEYS: dict[str, type | tuple[type, ...]] = {
    "prefix": str, "addresses": str, "max_delete_percent": (int, float), "min_managed_for_percent": int,
    "rule_limit": int, "allow_wide_ranges": bool, "concurrency": int, "retry_total": int,
    "retry_backoff": (int, float), "poll_interval": (int, float), "operation_timeout": (int, float),
    "timeout": (int, float), "lease_seconds": (int, float), "functions_pinned": bool,
    "compress": bool, "max_merge_gap": int, "headroom": int, "source": str, "restriction_priority": int,
}  # fmt: skip
OPTIONAL_KEYS = {"rule_limit", "timeout"}
SYNC_KEYS = {"name", "targets", "subscriptions", "resource_groups", "names", "tags", "kinds", "slots", "compress",
             "addresses", "label"}  # fmt: skip


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {problem}")

    def strings(self, entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = entry.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(f"{where}.{key}", "must be a list of non-empty strings")
        return tuple(v.strip() for v in value)


def load_scope(path: Path) -> Scope:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return build_scope(data, str(path))


def build_scope(data: dict[str, Any], source: str = "<config>") -> Scope:
    r = _Reader(source)
    unknown = sorted(set(data) - {"settings", "sync", "egress", "acknowledge"})
    if unknown:
        raise r.fail(unknown[0], "unknown key (allowed at the top level: settings, sync, egress, acknowledge)")
    settings = build_settings(data.get("settings", {}), r)
    raw_blocks = data.get("sync", [])
    if not isinstance(raw_blocks, list):
        raise r.fail("sync", "must be an array of tables: [[sync]]")
    blocks = tuple(_block(raw, f"sync[{i}]", r) for i, raw in enumerate(raw_blocks))
    names = [b.name for b in blocks]
    for name in names:
        if names.count(name) > 1:
            raise r.fail("sync", f"the name '{name}' is used by more than one [[sync]] block")
    egress = tuple(_egress(raw, f"egress[{i}]", r) for i, raw in enumerate(_array(data, "egress", r)))
    acks = tuple(_acknowledge(raw, f"acknowledge[{i}]", r) for i, raw in enumerate(_array(data, "acknowledge", r)))
    return Scope(settings, blocks, egress, acks)


def _array(data: dict[str, Any], key: str, r: _Reader) -> list[Any]:
    raw = data.get(key, [])
    if not isinstance(raw, list):
        raise r.fail(key, f"must be an array of tables: [[{key}]]")
    return raw


SELECTOR_KEYS = {"subscriptions", "resource_groups", "names", "tags", "kinds", "slots"}


def _selector(raw: dict[str, Any], where: str, r: _Reader) -> Selector:
    tags = raw.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise r.fail(f"{where}.tags", 'must be a table of strings, e.g. tags = { team = "shop" }')
    slots = raw.get("slots", True)
    if not isinstance(slots, bool):
        raise r.fail(f"{where}.slots", "must be true or false")
    return Selector(
        subscriptions=tuple(s.lower() for s in r.strings(raw, "subscriptions", where)),
        resource_groups=r.strings(raw, "resource_groups", where),
        names=r.strings(raw, "names", where),
        tags=tuple(sorted(tags.items())),
        kinds=tuple(k.lower() for k in r.strings(raw, "kinds", where)),
        slots=slots,
    )


def _egress(raw: Any, where: str, r: _Reader) -> DeclaredEgress:
    if not isinstance(raw, dict):
        raise r.fail(where, "must be a table")
    unknown = sorted(set(raw) - SELECTOR_KEYS - {"name", "addresses", "subnets"})
    if unknown:
        raise r.fail(f"{where}.{unknown[0]}", "unknown key (allowed: name, addresses, subnets, and app selectors)")
    addresses = _public_ranges(r.strings(raw, "addresses", where), f"{where}.addresses", r, ipv6=False)
    if not addresses:
        raise r.fail(f"{where}.addresses", "needs at least one public IPv4 address or CIDR")
    subnets = tuple(s.lower() for s in r.strings(raw, "subnets", where))
    has_selector = bool(set(raw) & SELECTOR_KEYS)
    if bool(subnets) == has_selector:
        raise r.fail(where, "give either subnets (integration subnet IDs) or app selectors, not both or neither")
    name = raw.get("name", where)
    if not isinstance(name, str) or not name.strip():
        raise r.fail(f"{where}.name", "must be a non-empty string")
    return DeclaredEgress(name.strip(), addresses, subnets, _selector(raw, where, r) if has_selector else None)


def _acknowledge(raw: Any, where: str, r: _Reader) -> Acknowledgement:
    if not isinstance(raw, dict):
        raise r.fail(where, "must be a table")
    unknown = sorted(set(raw) - SELECTOR_KEYS - {"reason"})
    if unknown:
        raise r.fail(f"{where}.{unknown[0]}", "unknown key (allowed: reason, and app selectors)")
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise r.fail(f"{where}.reason", "is required: say why these apps may stay unpinned")
    if not set(raw) & SELECTOR_KEYS:
        raise r.fail(where, "needs an app selector (names, resource_groups, tags ...): it never covers every app")
    return Acknowledgement(_selector(raw, where, r), reason.strip())


def override_settings(base: Settings, values: dict[str, Any], source: str) -> Settings:
    """Settings from flags on top of the config's, checked the same way."""
    return build_settings(values, _Reader(source), base)


def build_settings(raw: Any, r: _Reader, base: Settings | None = None) -> Settings:
    if not isinstance(raw, dict):
        raise r.fail("settings", "must be a table: [settings]")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        expected = SETTINGS_KEYS.get(key)
        if expected is None:
            raise r.fail(f"settings.{key}", f"unknown setting (known: {', '.join(sorted(SETTINGS_KEYS))})")
        if value is None and key in OPTIONAL_KEYS:  # only from a saved plan: TOML has no null
            values[key] = None
            continue
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise r.fail(f"settings.{key}", f"has the wrong type ({type(value).__name__})")
        values[key] = value
    where = "settings"
    if values.get("addresses", "possible") not in ("possible", "current"):
        raise r.fail(f"{where}.addresses", "must be 'possible' (possibleOutboundIpAddresses) or 'current'")
    if values.get("source", "arm") not in ("arm", "resource-graph"):
        raise r.fail(f"{where}.source", "must be 'arm' (lists per subscription) or 'resource-graph'")
    if not 0 <= values.get("max_delete_percent", 30) <= 100:
        raise r.fail(f"{where}.max_delete_percent", "must be between 0 and 100")
    for key in ("rule_limit", "concurrency", "operation_timeout", "timeout", "lease_seconds", "restriction_priority"):
        if values.get(key) is not None and values[key] < 1:
            raise r.fail(f"{where}.{key}", "must be at least 1")
    if values.get("restriction_priority", 1) >= 2147483647:  # that priority is App Service's implicit "Allow all"
        raise r.fail(f"{where}.restriction_priority", "must be below 2147483647")
    for key in (
        "min_managed_for_percent",
        "retry_total",
        "retry_backoff",
        "poll_interval",
        "max_merge_gap",
        "headroom",
    ):
        if values.get(key, 0) < 0:
            raise r.fail(f"{where}.{key}", "cannot be negative")
    try:
        return replace(base or Settings(), **values)
    except ConfigError as exc:
        raise r.fail(f"{where}.prefix", str(exc)) from exc


def _block(raw: Any, where: str, r: _Reader) -> SyncBlock:
    if not isinstance(raw, dict):
        raise r.fail(where, "must be a table")
    unknown = sorted(set(raw) - SYNC_KEYS)
    if unknown:
        raise r.fail(f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(SYNC_KEYS))})")
    name = raw.get("name", where)
    if not isinstance(name, str) or not name.strip():
        raise r.fail(f"{where}.name", "must be a non-empty string")
    target_ids = r.strings(raw, "targets", where)
    if not target_ids:
        raise r.fail(f"{where}.targets", "needs at least one target resource ID")
    targets = []
    for i, target_id in enumerate(target_ids):
        try:
            targets.append(parse_target(target_id))
        except ConfigError as exc:
            raise r.fail(f"{where}.targets[{i}]", str(exc)) from exc
    selector = _selector(raw, where, r)
    compress = raw.get("compress", False)
    if not isinstance(compress, bool):
        raise r.fail(f"{where}.compress", "must be true or false")
    addresses = _public_ranges(r.strings(raw, "addresses", where), f"{where}.addresses", r)
    label = raw.get("label", "")
    if not isinstance(label, str):
        raise r.fail(f"{where}.label", "must be a string")
    # A block of fixed addresses with no app selector selects no apps (not every app everywhere).
    selects_apps = not addresses or bool(set(raw) & SELECTOR_KEYS)
    return SyncBlock(name.strip(), tuple(targets), selector, compress, addresses, label.strip(), selects_apps)


def _public_ranges(addresses: tuple[str, ...], where: str, r: _Reader, ipv6: bool = True) -> tuple[str, ...]:
    """Public addresses or CIDRs (IPv6 too unless told), none wider than a /16 (IPv6: a /48)."""
    for i, text in enumerate(addresses):
        try:
            network = ipaddress.ip_network(text, strict=True) if ipv6 else ipaddress.IPv4Network(text, strict=True)
        except ValueError as exc:
            kind = "an IP" if ipv6 else "an IPv4"
            raise r.fail(f"{where}[{i}]", f"'{text}' is not {kind} address or CIDR: {exc}") from exc
        if not network.is_global:
            raise r.fail(f"{where}[{i}]", f"'{text}' is not a public range")
        widest = 16 if network.version == 4 else 48
        if network.prefixlen < widest:
            raise r.fail(f"{where}[{i}]", f"'{text}' is too wide (wider than a /{widest})")
    return addresses


def scope_from_flags(
    settings: Settings,
    targets: list[str],
    subscriptions: list[str],
    resource_groups: list[str],
    names: list[str],
    tags: list[str],
    kinds: list[str],
    slots: bool,
) -> Scope:
    """A one-off scope from command-line flags: one block, every flag a selector field."""
    parsed_tags = []
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--tag '{tag}': expected KEY=VALUE (VALUE may be * for 'present')")
        parsed_tags.append((key.strip(), value.strip()))
    selector = Selector(
        subscriptions=tuple(s.strip().lower() for s in subscriptions),
        resource_groups=tuple(resource_groups),
        names=tuple(names),
        tags=tuple(sorted(parsed_tags)),
        kinds=tuple(k.lower() for k in kinds),
        slots=slots,
    )
    refs = []
    for target in targets:
        try:
            refs.append(parse_target(target))
        except ConfigError as exc:
            raise ConfigError(f"--target: {exc}") from exc
    return Scope(settings, (SyncBlock("flags", tuple(refs), selector),))
