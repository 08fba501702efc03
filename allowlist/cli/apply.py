"""`allowlist apply [FILE]`: plan (or re-check a saved plan), pass the gate, confirm, write."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from allowlist.cli import options as o
from allowlist.cli.outcome import EXIT_ERROR, EXIT_OK
from allowlist.errors import AllowlistError, ConfigError


@o.with_common_options()
def apply(
    common: o.Common,
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="A plan saved by `plan --out`. Its scope is read again and every change re-checked; refused "
            "if the firewalls or the apps changed since.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking (for pipelines).")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow more deletes than max_delete_percent, or removing every rule.")
    ] = False,
) -> int:
    """Create the missing rules, then remove the stale ones allowlist owns. Asks first unless --yes."""
    from allowlist.apply import apply_plan
    from allowlist.config import load_scope
    from allowlist.gate import Mode, decide
    from allowlist.planfile import load_plan, plan_to_data
    from allowlist.report import render_plan, render_result, result_to_data
    from allowlist.savedplan import recheck
    from allowlist.scope import Settings

    fmt, verbose = common.format, common.verbose
    mode: Mode = "apply"
    began = time.time()  # another run's writes after this moment make this run add without deleting
    if plan_file is not None:
        if common.selects:
            raise ConfigError("a saved plan carries its own scope: give the FILE without scope flags")
        if common.policy_flags:
            raise ConfigError(
                f"a saved plan carries its own policy; {', '.join(common.policy_flags)} would not apply to it: "
                "plan again with them instead"
            )
        # The plan carries its policy and scope; how to run (poll_interval, concurrency ...) is the config's.
        config = o.config_path(common)
        base = load_scope(config).settings if config is not None else Settings()
        saved = load_plan(plan_file, common.runtime(base))
        clients = o.make_clients(common.arm_endpoint, saved.settings)
        common.note(f"Re-checking {plan_file} against {clients.settings.endpoint} ...")
        plan, mode = recheck(saved, clients), "apply-file"
    else:
        plan, _, clients = o.plan_for(common)
    if fmt != "json":
        o.emit(render_plan(plan, fmt, verbose))
    verdict = decide(plan.findings, mode, force)
    verdict.enforce()
    if not plan.has_changes:
        if fmt == "json":
            o.emit(json.dumps({"plan": plan_to_data(plan), "result": None}, indent=2) + "\n")
        verdict.finish()
        return EXIT_OK
    if not yes and plan_file is None:
        if not sys.stdin.isatty():
            raise AllowlistError("apply needs --yes when it cannot ask (no terminal); nothing was written")
        if not typer.confirm("Apply these changes?", default=False, err=True):
            common.note("Nothing was written.")
            return EXIT_ERROR
    from allowlist.cli.progress import close

    progress = common.progress()
    try:
        result = apply_plan(plan, clients, mode, force, began, progress)
    finally:
        close(progress)
    if fmt == "json":
        o.emit(json.dumps({"plan": plan_to_data(plan), "result": result_to_data(result)}, indent=2) + "\n")
    else:
        o.emit(render_result(result, fmt))
    if any(t.failed for t in result.targets):
        raise AllowlistError("some writes failed (see above); rules already written were kept")
    decide(plan.findings + result.findings, mode, force).finish()
    return EXIT_OK
