"""`allowlist plan`: read apps and firewalls, show what apply would change. Writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allowlist.cli import options as o
from allowlist.cli.outcome import EXIT_CHANGES, EXIT_OK, raise_if_unfinished


def plan(
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
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan as JSON for a later `allowlist apply FILE`.")
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes to apply (0: none, 1: error).")
    ] = False,
) -> int:
    """Show the firewall changes that would bring every target in step with its apps. Writes nothing."""
    from allowlist.planfile import save_plan
    from allowlist.report import render_plan
    from allowlist.sync import make_plan

    flags = o.ScopeFlags(
        config, tuple(target or ()), tuple(subscription or ()), tuple(resource_group or ()), tuple(name or ()),
        tuple(tag or ()), tuple(kind or ()), no_slots, current_only, prefix, rule_limit, allow_wide_ranges,
        concurrency,
    )  # fmt: skip
    scope = o.resolve_scope(flags)
    clients = o.make_clients(arm_endpoint, scope.settings)
    o.note(f"Reading apps and {len(scope.targets)} firewall(s) from {clients.settings.endpoint} ...", quiet)
    result, _ = make_plan(scope, clients)
    o.emit(render_plan(result, o.fmt(output), verbose))
    if out is not None:
        save_plan(result, out)
        o.note(f"Saved the plan to {out}. Apply exactly this plan with: allowlist apply {out}", quiet)
    raise_if_unfinished(result)
    return EXIT_CHANGES if detailed_exitcode and result.has_changes else EXIT_OK
