"""The plan as JSON (schema `allowlist-plan`, version 2): what `--output json` prints and `--out` saves.

A saved plan records its policy (prefix, thresholds, limits) and its scope, so `apply FILE` can
rediscover the same apps and re-derive every safety check; it does not record runtime settings
(concurrency, retries, timeouts). A digest over the content catches a file damaged or edited after it
was saved. Nothing in it varies between identical runs (no timestamps, everything sorted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import orjson

from allowlist.compress import Merge
from allowlist.config import build_scope, override_settings
from allowlist.errors import ConfigError, PlanFileError
from allowlist.findings import Finding, Kind
from allowlist.model import AppEgress, DiscoveryIssue, ExistingRule, IpRange
from allowlist.planner import STATIC, Change, Plan, TargetPlan
from allowlist.scope import POLICY_KEYS, Scope, Selector, Settings
from allowlist.targets.registry import parse_target

FORMAT = "allowlist-plan"
VERSION = 2


def _range(r: IpRange) -> dict[str, str]:
    return {"start": r.first, "end": r.last}


# A rule on a central server can be needed by thousands of apps: a change names the first few and counts
# them all (each app's addresses are in the plan's `apps`). Twenty full IDs each made a 10,000-app plan
# 58 MB, a fifth of its CPU spent writing it; five make it 26 MB.
APPS_PER_CHANGE = 5


def _change(c: Change, modes: dict[str, str] | None = None) -> dict[str, Any]:
    # Written out, not merged from _range's dict: a fresh plan at 10,000 apps saves 27,000 of these.
    apps, r = c.apps, c.range
    out: dict[str, Any] = {"action": c.action, "name": c.name, "start": r.first, "end": r.last,
                           "apps": list(apps[:APPS_PER_CHANGE]), "app_count": len(apps)}  # fmt: skip
    if modes is not None and apps:  # which egress made each app need it: platform, nat-gateway, ...
        out["egress"] = _egress(apps, modes)
    return out


def _egress(apps: tuple[str, ...], modes: dict[str, str]) -> list[str]:
    found: set[str | None] = set(map(modes.get, apps))  # a few modes from thousands of lookups, at C speed
    if None in found:  # fixed addresses from config, or an app this plan does not list
        found.discard(None)
        found |= {"static" if a.startswith(STATIC) else "unknown" for a in apps if a not in modes}
    return sorted(cast(set[str], found))  # None is gone


def app_to_data(a: AppEgress) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "subscription_id": a.subscription_id,
        "resource_group": a.resource_group,
        "kind": a.kind,
        "location": a.location,
        "tags": dict(a.tags),
        "ipv4": list(a.ipv4),
        "ipv6": list(a.ipv6),
        "source": a.source,
        "pinned": a.pinned,
        "reason": a.reason,
        "warnings": list(a.warnings),
        "mode": a.mode,
        "chain": list(a.chain),
        "service_endpoints": list(a.service_endpoints),
        "acknowledged": a.acknowledged,
    }


def _selector(selector: Selector) -> dict[str, Any]:
    return {
        "subscriptions": list(selector.subscriptions),
        "resource_groups": list(selector.resource_groups),
        "names": list(selector.names),
        "tags": dict(selector.tags),
        "kinds": list(selector.kinds),
        "slots": selector.slots,
    }


def _scope(scope: Scope | None) -> dict[str, Any] | None:
    """The scope in the config file's own shape, so reading it back runs the config's own checks."""
    if scope is None:
        return None
    return {
        "sync": [{"name": b.name, "targets": [t.id for t in b.targets], "compress": b.compress,
                  **(_selector(b.selector) if b.selects_apps else {}),
                  **({"addresses": list(b.addresses), "label": b.label} if b.addresses else {})}
                 for b in scope.blocks],
        "egress": [
            {"name": e.name, "addresses": list(e.addresses), **({"subnets": list(e.subnets)} if e.subnets else {}),
             **(_selector(e.selector) if e.selector else {})}
            for e in scope.egress
        ],
        "acknowledge": [{"reason": a.reason, **_selector(a.selector)} for a in scope.acknowledged],
    }  # fmt: skip


def plan_to_data(plan: Plan) -> dict[str, Any]:
    data = _body(plan)
    return {**data, "digest": digest(data)}


def _body(plan: Plan, lazy: bool = False) -> dict[str, Any]:
    """Everything a saved plan holds except its digest. Lazy: targets and apps are made one at a time as
    they are written (at 10,000 apps, holding them all made a run's peak memory twice what it needs)."""
    modes = {a.id: a.mode for a in plan.apps}
    data = {
        "format": FORMAT,
        "version": VERSION,
        "policy": plan.settings.policy(),
        "scope": _scope(plan.scope),
        "summary": {
            "add": plan.count("create"),
            "remove": plan.count("delete"),
            "withheld": sum(len(t.withheld) for t in plan.targets),
            "targets": len(plan.targets),
            "apps": len(plan.apps),
            "complete": plan.fully_read,
        },
        "targets": (_target(t, modes) for t in plan.targets),
        "findings": [{"kind": f.kind.value, "message": f.message, "target": f.target} for f in plan.extra],
        "apps": (app_to_data(a) for a in plan.apps),
        "issues": [{"scope": i.scope, "message": i.message} for i in plan.issues],
    }
    return data if lazy else {k: list(v) if isinstance(v, Iterator) else v for k, v in data.items()}


def _target(t: TargetPlan, modes: dict[str, str]) -> dict[str, Any]:
    return {
        "id": t.target.id,
        "kind": t.target.kind,
        "rule_limit": t.rule_limit,
        "existing_count": t.existing_count,
        "fingerprint": t.fingerprint,
        "error": t.error,
        "changes": [_change(c, modes) for c in t.changes],
        "keep": [_change(c, modes) for c in t.keeps],
        "withheld": [_change(c) for c in t.withheld],
        "unmanaged": [{"name": r.name, **_range(r.range)} for r in t.unmanaged],
        "findings": [{"kind": f.kind.value, "message": f.message} for f in t.findings],
        "merged": [
            {
                **_range(m.range),
                "parts": [_range(p) for p in m.parts],
                "extra": m.extra,
                "extra_ranges": [_range(r) for r in m.extra_ranges],
            }
            for m in t.merges
        ],
        "extra_addresses": sum(m.extra for m in t.merges),
    }


def digest(data: dict[str, Any]) -> str:
    """Over the canonical JSON of everything but the digest."""
    body = {k: v for k, v in data.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan_to_data(plan), indent=2) + "\n"


def save_plan(plan: Plan, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    # The file is the canonical JSON the digest covers, with the digest added, written as it is made: a
    # plan of 10,000 apps is tens of megabytes, which would otherwise be held twice (text and bytes).
    hasher = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            held = b""  # each piece is written once the next is made: the last, "}", comes after the digest
            for chunk in _canonical_chunks(_body(plan, lazy=True)):
                out.write(held)
                hasher.update(chunk)
                held = chunk
            fingerprint = "sha256:" + hasher.hexdigest()  # as digest() computes it
            out.write(f',"digest":{json.dumps(fingerprint)}}}\n'.encode())  # the closing brace comes last
        tmp.replace(path)  # never leave a half-written plan behind
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot write the plan: {exc.strerror or exc}") from exc


# Top-level parts whose items hold no float (targets and apps: strings, integers, booleans, null), so orjson
# writes them as canonical_json would; it spells some floats its own way (1e16 for 1e+16).
FLOATLESS = frozenset({"targets", "apps"})


def _canonical_chunks(value: Any, depth: int = 0, floatless: bool = False) -> Iterator[bytes]:
    """canonical_json(value) in pieces, encoded (it is ASCII), byte for byte: the top two levels are opened
    up, the rest is encoded by a C encoder in one call per item."""
    if depth == 2 or not isinstance(value, (dict, list, Iterator)):
        yield _floatless_json(value) if floatless else canonical_json(value).encode()
    elif isinstance(value, dict):
        yield b"{"
        for n, key in enumerate(sorted(value)):
            yield (("," if n else "") + json.dumps(key) + ":").encode()
            yield from _canonical_chunks(value[key], depth + 1, depth == 0 and key in FLOATLESS)
        yield b"}"
    else:
        yield b"["
        for n, item in enumerate(value):
            if n:
                yield b","
            yield from _canonical_chunks(item, depth + 1, floatless)
        yield b"]"


def _floatless_json(value: Any) -> bytes:
    """canonical_json of a value without floats, through orjson (several times faster: a tenth of a plan's
    CPU at 10,000 apps went to writing its file) where its bytes are the same. They are not when orjson
    writes UTF-8 or DEL where json escapes them (\\u00e9, \\u007f), or refuses a value (an integer over 64
    bits, a key that is not a string): json encodes those."""
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return canonical_json(value).encode()
    if encoded.isascii() and b"\x7f" not in encoded:
        return encoded
    return canonical_json(value).encode()


def load_plan(path: Path, runtime: Settings | None = None) -> Plan:
    """Read a saved plan; `runtime` supplies the settings a plan does not record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PlanFileError(f"{path}: plan file not found") from exc
    except (OSError, ValueError) as exc:
        raise PlanFileError(f"{path}: not a readable plan file: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PlanFileError(f'{path}: not an allowlist plan (expected "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise PlanFileError(
            f"{path}: plan version {data.get('version')!r} is not supported (this allowlist reads {VERSION}); "
            "run plan again"
        )
    if data.get("digest") != digest(data):
        raise PlanFileError(
            f"{path}: the plan was changed after it was saved (its digest does not match); run plan again"
        )
    try:
        return plan_from_data(data, runtime or Settings())
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        raise PlanFileError(f"{path}: the plan is damaged: {_why(exc)}") from exc


def _why(exc: Exception) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{what} must be a list, not {type(value).__name__}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _texts(value: Any, what: str) -> tuple[str, ...]:
    return tuple(_text(v, what) for v in _list(value, what))


def _read_range(d: dict[str, Any]) -> IpRange:
    return IpRange.parse(_text(d["start"], "start"), _text(d["end"], "end"))


def _read_change(d: Any, allowed: tuple[str, ...]) -> Change:
    if not isinstance(d, dict):
        raise TypeError(f"a change must be an object, not {type(d).__name__}")
    action = d["action"]
    if action not in allowed:
        raise ValueError(f"unknown action {action!r} in {d.get('name')!r} (allowed here: {', '.join(allowed)})")
    return Change(action, _text(d["name"], "name"), _read_range(d), _texts(d.get("apps", []), "apps"))


def _read_findings(items: Any, target: str) -> tuple[Finding, ...]:
    out = []
    for f in _list(items, "findings"):
        try:
            kind = Kind(f["kind"])
        except ValueError as exc:
            raise ValueError(f"unknown finding kind {f['kind']!r}") from exc
        out.append(Finding(kind, _text(f["message"], "message"), f.get("target", target)))
    return tuple(out)


def _read_scope(data: Any, settings: Settings) -> Scope:
    if not isinstance(data, dict):
        raise TypeError(f"scope must be an object, not {_shape(data)}")
    return replace(build_scope(data, "the plan's scope"), settings=settings)


def _shape(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def plan_from_data(data: dict[str, Any], runtime: Settings) -> Plan:
    policy = data["policy"]
    if not isinstance(policy, dict) or set(policy) != set(POLICY_KEYS):
        raise ValueError(f"policy must hold exactly {', '.join(POLICY_KEYS)}")
    settings = override_settings(runtime, policy, "policy")
    targets = []
    for t in _list(data["targets"], "targets"):
        target = parse_target(_text(t["id"], "id"))
        error = t.get("error")
        targets.append(
            TargetPlan(
                target=target,
                rule_limit=int(t["rule_limit"]),
                fingerprint=_text(t["fingerprint"], "fingerprint"),
                changes=tuple(_read_change(c, ("create", "delete")) for c in _list(t["changes"], "changes")),
                keeps=tuple(_read_change(c, ("keep",)) for c in _list(t["keep"], "keep")),
                unmanaged=tuple(ExistingRule(_text(r["name"], "name"), _read_range(r)) for r in t["unmanaged"]),
                withheld=tuple(_read_change(c, ("delete",)) for c in _list(t["withheld"], "withheld")),
                findings=_read_findings(t["findings"], target.id),
                error=None if error is None else _text(error, "error"),
                existing_count=int(t["existing_count"]),
                merges=tuple(
                    Merge(_read_range(m), tuple(_read_range(p) for p in _list(m["parts"], "parts")))
                    for m in _list(t.get("merged", []), "merged")
                ),
            )
        )
    apps = tuple(
        AppEgress(
            id=_text(a["id"], "id"),
            name=_text(a["name"], "name"),
            subscription_id=_text(a["subscription_id"], "subscription_id"),
            resource_group=_text(a["resource_group"], "resource_group"),
            kind=_text(a["kind"], "kind"),
            location=_text(a["location"], "location"),
            tags=tuple(sorted((str(k), str(v)) for k, v in a["tags"].items())),
            ipv4=_texts(a["ipv4"], "ipv4"),
            ipv6=_texts(a["ipv6"], "ipv6"),
            source=_text(a["source"], "source"),
            pinned=bool(a["pinned"]),
            reason=_text(a["reason"], "reason"),
            warnings=_texts(a["warnings"], "warnings"),
            mode=_text(a["mode"], "mode"),
            chain=_texts(a["chain"], "chain"),
            service_endpoints=_texts(a["service_endpoints"], "service_endpoints"),
            acknowledged=_text(a["acknowledged"], "acknowledged"),
        )
        for a in _list(data["apps"], "apps")
    )
    issues = tuple(DiscoveryIssue(_text(i["scope"], "scope"), _text(i["message"], "message")) for i in data["issues"])
    scope = _read_scope(data["scope"], settings)
    return Plan(settings, tuple(targets), apps, issues, scope, _read_findings(data.get("findings", []), ""))
