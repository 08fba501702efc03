"""TOML config (and one-off flags) -> Scope: which apps feed which targets, with which settings.

Errors name the file, the key and the problem, e.g. `allowlist.toml: sync[1].targets[0]: ...`.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from allowlist.errors import ConfigError
from allowlist.scope import (
    Acknowledgement,
    DeclaredEgress,
    Scope,
    Selector,
    Settings,
    SyncBlock,
)
from allowlist.targets.registry import parse_target

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
