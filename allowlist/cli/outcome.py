"""How a plan or an apply ends: the exit code, and the reason printed when it is not 0."""

from __future__ import annotations

from typing import TYPE_CHECKING

from allowlist.errors import Incomplete, UnsafePlanError

if TYPE_CHECKING:
    from allowlist.planner import Plan

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2  # only with --detailed-exitcode


def raise_if_unfinished(plan: Plan, force: bool = False) -> None:
    """A plan that could not see everything, or that may not be applied, ends the run non-zero."""
    problems = plan.problems(force)
    if problems:
        raise UnsafePlanError("the plan is unsafe and would be refused by apply:\n  " + "\n  ".join(problems))
    failed = [t for t in plan.targets if t.error]
    gaps = [t for t in plan.targets if t.incomplete]
    lines = [f"{t.target.name}: {t.error}" for t in failed]
    lines += [
        f"{t.target.name}: discovery incomplete, {len(t.withheld)} stale rule(s) kept: {t.incomplete[0]}"
        + (f" (+{len(t.incomplete) - 1} more)" if len(t.incomplete) > 1 else "")
        for t in gaps
    ]
    if lines:
        raise Incomplete("the run could not finish the job:\n  " + "\n  ".join(lines))
