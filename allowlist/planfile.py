"""The plan as JSON (schema `allowlist-plan`, version 1): what `--output json` prints and `--out` saves.

The same document is read back by `apply FILE`, so it carries everything apply needs and nothing
that varies between identical runs (no timestamps, everything sorted).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from allowlist.config import Settings
from allowlist.errors import ConfigError, PlanFileError
from allowlist.model import AppEgress, ExistingRule, IpRange, TargetRef
from allowlist.planner import Change, Plan, TargetPlan
from allowlist.sources.appservice import DiscoveryIssue

FORMAT = "allowlist-plan"
VERSION = 1


def _range(r: IpRange) -> dict[str, str]:
    return {"start": r.first, "end": r.last}


def _change(c: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"action": c.action, "name": c.name, **_range(c.range), "apps": list(c.apps)}
    if c.previous is not None:
        out["previous"] = _range(c.previous)
    return out


def app_to_data(a: AppEgress) -> dict[str, Any]:
    data = asdict(a)
    data["tags"] = dict(a.tags)
    for key in ("ipv4", "ipv6", "warnings"):
        data[key] = list(data[key])
    return data


def plan_to_data(plan: Plan) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "settings": asdict(plan.settings),
        "summary": {
            "add": plan.count("create"),
            "change": plan.count("update"),
            "remove": plan.count("delete"),
            "withheld": sum(len(t.withheld) for t in plan.targets),
            "targets": len(plan.targets),
            "apps": len(plan.apps),
        },
        "targets": [
            {
                "id": t.target.id,
                "kind": t.target.kind,
                "rule_limit": t.rule_limit,
                "existing_count": t.existing_count,
                "fingerprint": t.fingerprint,
                "error": t.error,
                "changes": [_change(c) for c in t.changes],
                "keep": [_change(c) for c in t.keeps],
                "withheld": [_change(c) for c in t.withheld],
                "unmanaged": [{"name": r.name, **_range(r.range)} for r in t.unmanaged],
                "incomplete": list(t.incomplete),
                "blockers": list(t.blockers),
                "threshold": t.threshold,
                "warnings": list(t.warnings),
            }
            for t in plan.targets
        ],
        "apps": [app_to_data(a) for a in plan.apps],
        "issues": [{"scope": i.scope, "message": i.message} for i in plan.issues],
    }


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan_to_data(plan), indent=2, sort_keys=False) + "\n"


def save_plan(plan: Plan, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(plan_to_json(plan), encoding="utf-8")
        tmp.replace(path)  # never leave a half-written plan behind
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot write the plan: {exc.strerror or exc}") from exc


def load_plan(path: Path) -> Plan:
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
            f"{path}: plan version {data.get('version')!r} is not supported (this allowlist reads {VERSION})"
        )
    try:
        return plan_from_data(data)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise PlanFileError(f"{path}: the plan is damaged: {exc}") from exc


def _read_range(d: dict[str, Any]) -> IpRange:
    return IpRange.parse(d["start"], d["end"])


def _read_change(d: dict[str, Any]) -> Change:
    previous = _read_range(d["previous"]) if "previous" in d else None
    return Change(d["action"], d["name"], _read_range(d), previous, tuple(d.get("apps", [])))


def plan_from_data(data: dict[str, Any]) -> Plan:
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in data["settings"].items() if k in known})
    targets = tuple(
        TargetPlan(
            target=TargetRef.parse(t["id"]),
            rule_limit=int(t["rule_limit"]),
            fingerprint=str(t["fingerprint"]),
            changes=tuple(_read_change(c) for c in t["changes"]),
            keeps=tuple(_read_change(c) for c in t["keep"]),
            unmanaged=tuple(ExistingRule(r["name"], _read_range(r)) for r in t["unmanaged"]),
            withheld=tuple(_read_change(c) for c in t["withheld"]),
            incomplete=tuple(t["incomplete"]),
            blockers=tuple(t["blockers"]),
            threshold=t["threshold"],
            error=t["error"],
            existing_count=int(t["existing_count"]),
            warnings=tuple(t["warnings"]),
        )
        for t in data["targets"]
    )
    apps = tuple(
        AppEgress(
            **{
                **a,
                "tags": tuple(sorted(a["tags"].items())),
                "ipv4": tuple(a["ipv4"]),
                "ipv6": tuple(a["ipv6"]),
                "warnings": tuple(a["warnings"]),
            }
        )
        for a in data["apps"]
    )
    issues = tuple(DiscoveryIssue(i["scope"], i["message"]) for i in data["issues"])
    return Plan(settings, targets, apps, issues)
