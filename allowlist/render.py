"""Rendering a Plan's desired rules as infrastructure code through the Jinja2 templates in templates/.

A format is a folder of `*.j2` files. A file whose name holds `{target}` is rendered once per target
(`{target}` becomes its file name, `app.slot` for a slot); any other is rendered once. The variables every template
gets are built by `template_context` and documented in the README.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allowlist import __version__
from allowlist.errors import AllowlistError, ConfigError
from allowlist.gate import decide
from allowlist.model import IpRange
from allowlist.planner import Change, Plan, TargetPlan
from allowlist.targets.ledger import ledger_tags
from allowlist.targets.registry import BACKENDS
from allowlist.targets.webapp import cidrs, restriction, with_rule, without_rule

RULE_COLLECTION = {4: "firewallRules", 6: "ipv6FirewallRules"}
FORMATS = ("terraform", "bicep", "arm", "azcli", "powershell", "csv", "json")


class RenderError(AllowlistError):
    """The plan cannot be rendered into something safe to deploy; nothing was written."""


def builtin_templates() -> Path:
    """templates/ installs inside the package; in a source checkout it sits beside it."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise RenderError(f"the built-in templates are missing (looked in {package / 'templates'})")


@dataclass(frozen=True)
class RenderOptions:
    fmt: str
    templates: Path | None = None  # a folder holding one sub-folder per format, like templates/
    command: str = ""  # how the user asked, for the header
    scope: str = ""  # which config / flags, for the header
    with_imports: bool = False  # terraform: import blocks for managed rules that already exist
    timestamp: str | None = None  # only when asked: output otherwise diffs cleanly run to run
    force: bool = False  # lifts the delete threshold, as in apply


def _rule(change: Change, target: TargetPlan) -> dict[str, Any]:
    return {
        "key": f"{target.target.name}/{change.name}",  # static: known before any apply, for for_each
        "name": change.name,
        "start": change.range.first,
        "end": change.range.last,
        "apps": list(change.apps),
        "exists": change.action != "create",
        "version": change.range.version,
        "cidrs": cidrs(change.range),  # the range as CIDRs, comma-separated, as access restrictions take it
        # an access restriction is an entry of config/web, not a resource of its own
        "id": f"{target.target.id}/config/web"
        if target.target.kind == "webapp"
        else f"{target.target.id}/{RULE_COLLECTION[change.range.version]}/{change.name}",
    }


def template_context(plan: Plan, options: RenderOptions) -> dict[str, Any]:
    apps = {a.id: a for a in plan.apps}
    targets = []
    inventory = []
    for t in plan.targets:
        desired = sorted((c for c in t.changes + t.keeps if c.action != "delete"), key=lambda c: c.name.lower())
        rules = [_rule(c, t) for c in desired]
        named = BACKENDS[t.target.kind].capabilities.named_ranges
        split = t.target.kind == "sql"
        # Address lists are written whole: what the list holds after apply, other entries included.
        others = {r.name for r in t.unmanaged}
        final = sorted(others | {c.name for c in desired}, key=_entry_order)
        foreign_kept = {c.name for c in t.keeps} & others
        targets.append(
            {
                "id": t.target.id,
                "name": t.target.name,
                "file": t.target.name.replace("/slots/", "."),  # a slot's files sit beside its app's
                "restrictions": restrictions(t, plan.settings.restriction_priority)
                if t.target.kind == "webapp"
                else [],
                "type": t.target.type,
                "subscription_id": t.target.subscription_id,
                "resource_group": t.target.resource_group,
                "kind": t.target.kind,
                "named": named,
                "final": [] if named else final,
                "ledger": {} if named else ledger_tags(plan.settings.prefix, {c.name for c in desired} - foreign_kept),
                # SQL keeps IPv6 rules in a collection of their own (ipv6FirewallRules): rules6 / stale6.
                "rules": [r for r in rules if not split or r["version"] == 4],
                "rules6": [r for r in rules if split and r["version"] == 6],
                "ipv6": any(c.range.version == 6 for c in desired),  # formats that cannot write IPv6 refuse it
                "stale": [_ends(c.name, c.range) for c in t.of("delete") if not split or c.range.version == 4],
                "stale6": [_ends(c.name, c.range) for c in t.of("delete") if split and c.range.version == 6],
                "unmanaged": [_ends(r.name, r.range) for r in t.unmanaged],
            }
        )
        for change in desired:
            for app_id in (a for a in change.apps if a in apps):  # fixed addresses have no app behind them
                inventory += [
                    {"target": t.target.id, "rule": change.name, "start": change.range.first, "end": change.range.last,
                     "app_id": app_id, "app": apps[app_id].name, "address": address}
                    for address in (apps[app_id].ipv4 if change.range.version == 4 else apps[app_id].ipv6)
                    if int(ipaddress.ip_address(address)) in change.range
                ]  # fmt: skip
    inventory.sort(key=lambda r: (r["target"].lower(), r["rule"], r["app_id"].lower(), _address_order(r["address"])))
    return {
        "generator": f"allowlist {__version__}",
        "command": options.command,
        "scope": options.scope,
        "timestamp": options.timestamp,
        "prefix": plan.settings.prefix,
        "restriction_priority": plan.settings.restriction_priority,
        "addresses": "possibleOutboundIpAddresses" if plan.settings.addresses == "possible" else "outboundIpAddresses",
        "with_imports": options.with_imports,
        "targets": targets,
        # What each kind of back end is, for templates: ARM type, API version, IaC resource names.
        "backends": {
            b.kind: {"type": b.arm_type, "api_version": b.api_version, "label": b.capabilities.label, **b.iac}
            for b in BACKENDS.values()
        },
        "inventory": inventory,
        "apps": [
            {"id": a.id, "name": a.name, "kind": a.kind, "ipv4": list(a.ipv4), "pinned": a.pinned, "reason": a.reason}
            for a in plan.apps
        ],
    }


def _ends(name: str, rule_range: IpRange) -> dict[str, str]:
    return {"name": name, "start": rule_range.first, "end": rule_range.last}


def restrictions(t: TargetPlan, priority: int) -> list[dict[str, Any]]:
    """An app's whole access-restriction list after apply: every entry as read, byte for byte, in its order,
    without the stale rules allowlist made, then the new ones (as apply edits it, see targets/webapp.py)."""
    entries = [json.loads(e) for e in t.entries]
    for change in t.of("delete"):
        entries = without_rule(entries, change.name, change.range)
    for change in t.of("create"):
        entries = with_rule(entries, restriction(change.name, change.range, priority))
    return entries


def _entry_order(entry: str) -> tuple[int, int, str]:
    try:
        address = ipaddress.ip_address(entry.split("/")[0])
    except ValueError:
        return (0, -1, entry)
    return (address.version, int(address), entry)


def _address_order(address: str) -> tuple[int, int]:
    parsed = ipaddress.ip_address(address)
    return (parsed.version, int(parsed))


# Filters for quoting values safely in each language.
def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _hcl(value: str) -> str:
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _bicep(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\${") + "'"


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


_BICEP_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _bicep_value(value: Any, depth: int = 0) -> str:
    """Any JSON value as a Bicep literal (objects and arrays one item per line), for lists kept whole."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        keys = [k if _BICEP_KEY.match(k) else _bicep(k) for k in value]
        items = "".join(
            f"{inner}{k}: {_bicep_value(v, depth + 1)}\n" for k, v in zip(keys, value.values(), strict=True)
        )
        return "{\n" + items + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + "".join(f"{inner}{_bicep_value(v, depth + 1)}\n" for v in value) + pad + "]"
    if isinstance(value, str):
        return _bicep(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return json.dumps(value)  # numbers


def _arm_literal(value: Any) -> Any:
    """ARM reads a string in [brackets] as an expression; "[[" keeps one literal (e.g. a description)."""
    if isinstance(value, dict):
        return {k: _arm_literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_arm_literal(v) for v in value]
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return "[" + value
    return value


def _ps(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _csv(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def _fail(message: str) -> str:
    """For templates: refuse what the format cannot express, instead of writing something wrong."""
    raise RenderError(message)


def render(plan: Plan, options: RenderOptions) -> dict[str, str]:
    """Every output file by relative path, rendered in memory so that a failure writes nothing."""
    import jinja2

    if options.fmt not in FORMATS:
        raise ConfigError(f"unknown format '{options.fmt}' (known: {', '.join(FORMATS)})")
    # The files are the whole truth for each target: the gate refuses gaps here that apply would skip.
    decide(plan.findings, "render", options.force).enforce()
    root = options.templates or builtin_templates()
    folder = root / options.fmt
    sources = sorted(folder.glob("*.j2")) if folder.is_dir() else []
    if not sources:
        raise ConfigError(f"{folder}: no *.j2 templates for format '{options.fmt}'")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails the render instead of vanishing
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(json=_json, json_line=_json_line, hcl=_hcl, bicep=_bicep, bicep_value=_bicep_value,
                       arm_literal=_arm_literal, sh=shlex.quote, ps=_ps, csv=_csv)  # fmt: skip
    env.globals["fail"] = _fail
    context = template_context(plan, options)
    files: dict[str, str] = {}
    for source in sources:
        template_name = source.name
        out_name = template_name[: -len(".j2")]
        try:
            template = env.get_template(template_name)
            if "{target}" in out_name:
                for target in context["targets"]:
                    files[out_name.replace("{target}", target["file"])] = template.render(context, target=target)
            else:
                files[out_name] = template.render(context)
        except RenderError as exc:
            raise RenderError(f"{options.fmt}: {exc}; nothing was written") from exc
        except jinja2.TemplateError as exc:
            where = f"{source}:{exc.lineno}" if isinstance(exc, jinja2.TemplateSyntaxError) else str(source)
            raise RenderError(f"{where}: template error: {exc.message or exc}") from exc
    return files


def write_files(files: dict[str, str], out: Path) -> list[Path]:
    """Write into `out`, making it if needed. Paths stay inside it."""
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in sorted(files.items()):
            path = out / name
            if out.resolve() not in path.resolve().parents:
                raise RenderError(f"template output '{name}' would land outside {out}")
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise RenderError(f"{out}: cannot write: {exc.strerror or exc}") from exc
    return written
