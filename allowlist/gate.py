"""The one safety gate: given a plan's findings, a mode and --force, what may proceed.

Every command goes through `decide`; none keeps its own list of what is unsafe.

- plan:        writes nothing; a finding that would stop apply makes it exit 1 ("would be refused").
- apply:       any refusing finding stops the whole plan before the first write; findings that only
               mean "could not see everything" let the safe part run (no deletes there), then exit 1.
- apply-file:  as apply; the saved plan's own check adds its findings (foreign rules, stale plan ...).
- render:      the files are the whole truth for each target, so an unread target or a gap in
               discovery refuses too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from allowlist.errors import Incomplete, UnsafePlanError
from allowlist.findings import Finding, Kind

Mode = Literal["plan", "apply", "apply-file", "render"]

UNFINISHED = frozenset({Kind.READ_FAILURE, Kind.INCOMPLETE, Kind.LEASE_HELD})
REFUSING = frozenset(
    {
        Kind.RULE_LIMIT,
        Kind.NO_ROOM,
        Kind.WIDE_RANGE,
        Kind.INVALID_NAME,
        Kind.NAME_TAKEN,
        Kind.LIST_SAFETY,
        Kind.FOREIGN_RULE,
        Kind.BAD_CHANGE,
        Kind.STALE_PLAN,
    }
)
FORCEABLE = frozenset({Kind.DELETE_THRESHOLD})


@dataclass(frozen=True)
class Verdict:
    mode: Mode
    refused: tuple[Finding, ...]  # nothing may be written
    unfinished: tuple[Finding, ...]  # the safe part may run; the run ends non-zero

    @property
    def may_write(self) -> bool:
        return not self.refused

    def enforce(self) -> None:
        """Raise before the first write when the plan is refused."""
        if not self.refused:
            return
        head = {
            "plan": "the plan is unsafe and would be refused by apply",
            "render": "cannot render a complete, deployable allowlist, nothing was written",
        }.get(self.mode, "the plan is unsafe, nothing was written")
        raise UnsafePlanError(_lines(head, self.refused))

    def finish(self) -> None:
        """Raise after the safe part ran when the run could not finish the job."""
        self.enforce()
        if self.unfinished:
            raise Incomplete(_lines("the run could not finish the job", self.unfinished))


def decide(findings: Iterable[Finding], mode: Mode, force: bool = False) -> Verdict:
    refused: list[Finding] = []
    unfinished: list[Finding] = []
    for finding in findings:
        if finding.kind in REFUSING or (finding.kind in FORCEABLE and not force):
            refused.append(finding)
        elif finding.kind in UNFINISHED:
            (refused if mode == "render" else unfinished).append(finding)
    return Verdict(mode, tuple(refused), tuple(unfinished))


def _lines(head: str, findings: tuple[Finding, ...]) -> str:
    return head + ":\n  " + "\n  ".join(f.line() for f in findings)
