"""`allowlist plan`: read apps and firewalls, show what apply would change. Writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allowlist.cli import options as o
from allowlist.cli.outcome import EXIT_CHANGES, EXIT_OK


@o.with_common_options()
def plan(
    common: o.Common,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan as JSON for a later `allowlist apply FILE`.")
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes to apply (0: none, 1: error).")
    ] = False,
) -> int:
    """Show the firewall changes that would bring every target in step with its apps. Writes nothing."""
    from allowlist.gate import decide
    from allowlist.planfile import save_plan
    from allowlist.report import render_plan

    result, _, _ = o.plan_for(common)
    o.emit(render_plan(result, common.format, common.verbose))
    if out is not None:
        save_plan(result, out)
        common.note(f"Saved the plan to {out}. Apply exactly this plan with: allowlist apply {out}")
    decide(result.findings, "plan").finish()
    return EXIT_CHANGES if detailed_exitcode and result.has_changes else EXIT_OK
