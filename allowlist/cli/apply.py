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


@o.with_common_options()
def apply(
    common: o.Common,
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="A plan saved by `plan --out`; refused if any firewall changed since.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking (for pipelines).")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow more deletes than max_delete_percent, or removing every rule.")
    ] = False,
) -> int:
    """Create the missing rules, then remove the stale ones allowlist owns. Asks first unless --yes."""
    from allowlist.apply import apply_plan, check_fresh, check_safe
    from allowlist.planfile import load_plan, plan_to_data
    from allowlist.report import render_plan, render_result, result_to_data

    fmt, verbose = common.format, common.verbose
    if plan_file is not None:
        if common.selects or common.config is not None:
            raise AllowlistError("a saved plan carries its own scope: give the FILE alone, without scope flags")
        plan = load_plan(plan_file)
        clients = o.make_clients(common.arm_endpoint, plan.settings)
        check_fresh(plan, clients)
    else:
        plan, _, clients = o.plan_for(common)
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
            common.note("Nothing was written.")
            return EXIT_ERROR
    result = apply_plan(plan, clients, force=force)
    if fmt == "json":
        o.emit(json.dumps({"plan": plan_to_data(plan), "result": result_to_data(result)}, indent=2) + "\n")
    else:
        o.emit(render_result(result, fmt))
    if not result.ok:
        raise AllowlistError("some writes failed (see above); rules already written were kept")
    raise_if_unfinished(plan, force)
    return EXIT_OK
