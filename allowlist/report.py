"""Text, JSON and Markdown views of plans, apply results and discovered apps. Pure: returns strings."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any, Literal

from allowlist.addresses import merge_ranges
from allowlist.apply import ApplyResult
from allowlist.model import AppEgress
from allowlist.planfile import app_to_data, plan_to_json
from allowlist.planner import Change, Plan, TargetPlan

Format = Literal["text", "json", "markdown"]
SYMBOL = {"create": "+", "delete": "-", "keep": "="}


def summary_line(plan: Plan) -> str:
    """The headline: "No changes" only when every scope and every target was read."""
    changes = f"Plan: {plan.count('create')} to add, {plan.count('delete')} to remove."
    if plan.fully_read:
        return changes if plan.has_changes else "No changes. The firewalls match the apps' outbound addresses."
    unread = sum(1 for t in plan.targets if t.error)
    gaps = sum(1 for t in plan.targets if t.incomplete)
    parts = [f"{unread} target(s) could not be read"] if unread else []
    parts += [f"discovery is incomplete for {gaps} target(s)"] if gaps else []
    parts += [f"{len(plan.issues)} scope(s) could not be listed"] if plan.issues and not gaps else []
    head = "Incomplete: " + ", ".join(parts) + "."
    return f"{head} {changes if plan.has_changes else 'No changes among what was read.'}"


@functools.lru_cache(maxsize=65536)  # a plan names each app in several lines: about 70,000 at 10,000 apps
def _short(app_id: str) -> str:
    """`.../resourceGroups/rg/providers/Microsoft.Web/sites/web/slots/s` -> `web/s`; `static:office` as is."""
    if app_id.startswith("static:"):
        return app_id
    parts = app_id.split("/")
    return "/".join(parts[8:9] + parts[10:11]) if len(parts) > 8 else app_id


def _apps(change: Change, limit: int = 3) -> str:
    if not change.apps:
        return ""
    names = map(_short, change.apps[:limit])
    more = f" +{len(change.apps) - limit} more" if len(change.apps) > limit else ""
    return f"  ({', '.join(names)}{more})"


def _change_line(change: Change, width: int) -> str:
    line = f"  {SYMBOL[change.action]} {change.name:<{width}}  {change.range.first} - {change.range.last}"
    return line + _apps(change)


def _target_text(t: TargetPlan, verbose: bool) -> list[str]:
    lines = [f"{t.target.name}  ({t.target.id})"]
    if t.error:
        return [*lines, f"  ERROR {t.error}"]
    shown = list(t.changes) + (list(t.keeps) if verbose else [])
    width = max((len(c.name) for c in [*shown, *t.withheld]), default=0)
    lines += [_change_line(c, width) for c in shown]
    lines += [f"  ! {c.name:<{width}}  {c.range}  delete withheld: discovery incomplete" for c in t.withheld]
    unmanaged = ", ".join(r.name for r in t.unmanaged) or "none"
    lines.append(f"  {len(t.keeps)} kept; not managed by allowlist, left alone: {unmanaged}")
    for m in t.merges:
        gaps = ", ".join(str(r) for r in m.extra_ranges[:4]) + (" ..." if len(m.extra_ranges) > 4 else "")
        lines.append(f"  * merged {m.range}: opens {m.extra} extra address(es): {gaps}")
    if t.merges:
        lines.append(f"  {sum(m.extra for m in t.merges)} extra address(es) opened in all to fit the rule limit")
    lines += [f"  incomplete: {reason}" for reason in t.incomplete]
    lines += [f"  warning: {w}" for w in t.warnings]
    lines += [f"  BLOCKED: {b}" for b in t.blockers]
    return lines


def plan_text(plan: Plan, verbose: bool = False) -> str:
    lines: list[str] = []
    for target in plan.targets:
        lines += [*_target_text(target, verbose), ""]
    for issue in plan.issues:
        lines.append(f"discovery: {issue.scope}: {issue.message}")
    lines += [f"BLOCKED: {f.line()}" for f in plan.extra]
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def plan_markdown(plan: Plan) -> str:
    lines = ["## allowlist plan", "", f"**{summary_line(plan)}**", ""]
    for t in plan.targets:
        lines += [f"### `{t.target.name}`", "", f"`{t.target.id}`", ""]
        if t.error:
            lines += [f"> :x: {_md_escape(t.error)}", ""]
            continue
        rows = [*t.changes, *t.withheld]
        if rows:
            lines += ["| | rule | start | end | apps |", "|---|---|---|---|---|"]
            for c in t.changes:
                lines.append(f"| {SYMBOL[c.action]} | `{c.name}` | {c.range.first} | {c.range.last} | {len(c.apps)} |")
            for c in t.withheld:
                lines.append(f"| withheld | `{c.name}` | {c.range.first} | {c.range.last} | |")
            lines.append("")
        unmanaged = ", ".join(f"`{r.name}`" for r in t.unmanaged) or "none"
        lines += [f"{len(t.keeps)} kept. Not managed by allowlist (left alone): {unmanaged}", ""]
        notes = [*t.incomplete, *t.warnings, *t.blockers]
        lines += [f"- :warning: {_md_escape(n)}" for n in notes]
        if notes:
            lines.append("")
    return "\n".join(lines)


def render_plan(plan: Plan, fmt: Format, verbose: bool = False) -> str:
    if fmt == "json":
        return plan_to_json(plan)
    if fmt == "markdown":
        return plan_markdown(plan)
    return plan_text(plan, verbose)


def result_to_data(result: ApplyResult) -> dict[str, Any]:
    return {
        "format": "allowlist-apply-result",
        "version": 1,
        "ok": result.ok,
        "summary": {a: result.count(a) for a in ("create", "delete")},
        "targets": [
            {
                "id": t.target.id,
                "ok": t.ok,
                "done": [{"action": c.action, "name": c.name} for c in t.done],
                "failed": [{"action": c.action, "name": c.name, "error": e} for c, e in t.failed],
                "skipped": [{"action": c.action, "name": c.name} for c in t.skipped],
                "findings": [{"kind": f.kind.value, "message": f.message} for f in t.findings],
            }
            for t in result.targets
        ],
    }


def render_result(result: ApplyResult, fmt: Format) -> str:
    if fmt == "json":
        return json.dumps(result_to_data(result), indent=2) + "\n"
    lines = []
    for t in result.targets:
        counts = ", ".join(f"{sum(c.action == a for c in t.done)} {w}" for a, w in _WORDS)
        lines.append(f"{t.target.name}: {counts}")
        for change, error in t.failed:
            lines.append(f"  FAILED {SYMBOL[change.action]} {change.name}: {error}")
        lines += [f"  SKIPPED: {f.message}" for f in t.findings]
        if t.skipped and not t.findings:
            lines.append(f"  {len(t.skipped)} later write(s) not tried, so no address is removed early")
    totals = ", ".join(f"{result.count(a)} {w}" for a, w in _WORDS)
    lines.append(f"Apply {'complete' if result.ok else 'FAILED'}: {totals}.")
    text = "\n".join(lines) + "\n"
    return text if fmt == "text" else "## allowlist apply\n\n```\n" + text + "```\n"


_WORDS = (("create", "added"), ("delete", "removed"))


def render_apps(apps: Sequence[AppEgress], fmt: Format, verbose: bool = False, explain: bool = False) -> str:
    if fmt == "json":
        return (
            json.dumps({"format": "allowlist-apps", "version": 1, "apps": [app_to_data(a) for a in apps]}, indent=2)
            + "\n"
        )
    rows = []
    for app in apps:
        ranges = ", ".join(str(r) for r in merge_ranges(app.ipv4)) or "-"
        status = "pinned" if app.pinned else f"NOT PINNED: {app.reason}"
        if app.acknowledged:
            status += f" (acknowledged: {app.acknowledged})"
        rows.append((app.name, app.kind, ranges, status, app))
    if fmt == "markdown":
        lines = ["| app | kind | IPv4 | egress | status |", "|---|---|---|---|---|"]
        lines += [f"| `{n}` | {k} | {r} | {a.mode} | {_md_escape(s)} |" for n, k, r, s, a in rows]
        return "\n".join(lines) + "\n"
    width = max((len(r[0]) for r in rows), default=3)
    kind_width = max((len(r[1]) for r in rows), default=4)
    lines = [f"{'APP':<{width}}  {'KIND':<{kind_width}}  IPv4 ({'possible' if _possible(apps) else 'current'})"]
    for name, kind, ranges, status, app in rows:
        lines.append(f"{name:<{width}}  {kind:<{kind_width}}  {ranges}")
        if not app.pinned:
            lines.append(f"{'':<{width}}  {'':<{kind_width}}  {status}")
        if explain:
            lines.append(f"{'':<{width}}  {'':<{kind_width}}  egress: {app.mode}")
            lines += [
                f"{'':<{width}}  {'':<{kind_width}}    {'-> ' if i else ''}{link}" for i, link in enumerate(app.chain)
            ]
        if verbose:
            lines += [f"{'':<{width}}  {'':<{kind_width}}  note: {w}" for w in app.warnings]
            if app.ipv6:
                lines.append(f"{'':<{width}}  {'':<{kind_width}}  IPv6: {', '.join(app.ipv6)}")
    pinned = sum(a.pinned for a in apps)
    lines.append(f"{len(apps)} apps, {pinned} pinned, {len(apps) - pinned} not pinned.")
    return "\n".join(lines) + "\n"


def _possible(apps: Sequence[AppEgress]) -> bool:
    return not apps or apps[0].source.startswith("possible")
