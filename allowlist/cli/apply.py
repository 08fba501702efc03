"""`allowlist apply [FILE]`: plan (or load a saved plan), check safety, confirm, write."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from allowlist.cli import options as o
from allowlist.cli.outcome import EXIT_ERROR, EXIT_OK, raise_if_unfinished
from allowlist.errors import AllowlistError


def apply(
    plan_file: Annotated[
        Path | None,
        typer.Argument(help="A plan saved by `plan --out`; refused if any firewall changed since.", show_default=False),
    ] = None,
    config: o.ConfigOpt = None,
    target: o.TargetOpt = None,
    subscription: o.SubscriptionOpt = None,
    resource_group: o.GroupOpt = None,
    name: o.NameOpt = None,
    tag: o.TagOpt = None,
    kind: o.KindOpt = None,
    no_slots: o.NoSlotsOpt = False,
    current_only: o.CurrentOpt = False,
    prefix: o.PrefixOpt = None,
    rule_limit: o.LimitOpt = None,
    allow_wide_ranges: o.WideOpt = False,
    concurrency: o.ConcurrencyOpt = None,
    arm_endpoint: o.EndpointOpt = None,
    output: o.OutputOpt = o.OutputFormat.text,
    verbose: o.VerboseOpt = False,
    quiet: o.QuietOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking (for pipelines).")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow more deletes than max_delete_percent, or removing every rule.")
    ] = False,
) -> int:
    """Create the missing rules, then remove the stale ones allowlist owns. Asks first unless --yes."""
    from allowlist.apply import apply_plan, check_fresh, check_safe
    from allowlist.planfile import load_plan, plan_to_data
    from allowlist.report import render_plan, render_result
    from allowlist.sync import make_plan

    flags = o.ScopeFlags(
        config, tuple(target or ()), tuple(subscription or ()), tuple(resource_group or ()), tuple(name or ()),
        tuple(tag or ()), tuple(kind or ()), no_slots, current_only, prefix, rule_limit, allow_wide_ranges,
        concurrency,
    )  # fmt: skip
    fmt = o.fmt(output)
    if plan_file is not None:
        if flags.selects or config is not None:
            raise AllowlistError("a saved plan carries its own scope: give the FILE alone, without scope flags")
        plan = load_plan(plan_file)
        clients = o.make_clients(arm_endpoint, plan.settings)
        check_fresh(plan, clients)
    else:
        scope = o.resolve_scope(flags)
        clients = o.make_clients(arm_endpoint, scope.settings)
        o.note(f"Reading apps and {len(scope.targets)} firewall(s) from {clients.settings.endpoint} ...", quiet)
        plan, _ = make_plan(scope, clients)
    if fmt != "json":
        o.emit(render_plan(plan, fmt, verbose))
    check_safe(plan, force)
    if not plan.has_changes:
        if fmt == "json":
            o.emit(json.dumps({"plan": plan_to_data(plan), "result": None}, indent=2) + "\n")
        raise_if_unfinished(plan, force)
        return EXIT_OK
    if not yes and plan_file is None:
        if not sys.stdin.isatty():
            raise AllowlistError("apply needs --yes when it cannot ask (no terminal); nothing was written")
        if not typer.confirm("Apply these changes?", default=False, err=True):
            o.note("Nothing was written.")
            return EXIT_ERROR
    result = apply_plan(plan, clients, force=force)
    if fmt == "json":
        o.emit(json.dumps({"plan": plan_to_data(plan), "result": json.loads(render_result(result, fmt))}, indent=2))
        o.emit("\n")
    else:
        o.emit(render_result(result, fmt))
    if not result.ok:
        raise AllowlistError("some writes failed (see above); rules already written were kept")
    raise_if_unfinished(plan, force)
    return EXIT_OK
