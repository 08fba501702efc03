"""Typed findings: what the planner (or the check of a saved plan) found that bears on safety.

A finding only says what is true. What may proceed because of it is decided in one place, `gate.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    # The run could not see everything: it does what is safe (no deletes) and ends non-zero.
    READ_FAILURE = "read-failure"  # the target's firewall could not be read
    INCOMPLETE = "incomplete-discovery"  # a subscription, a group's site list or an app's egress is unknown
    LEASE_HELD = "lease-held"  # another run is writing this target
    # The plan must not be applied as it is.
    RULE_LIMIT = "rule-limit"
    NO_ROOM = "no-room"  # the limit leaves no order of writes that keeps every needed address covered
    WIDE_RANGE = "wide-range"
    INVALID_NAME = "invalid-name"
    NAME_TAKEN = "name-taken"  # a rule allowlist would create exists, holding another range
    LIST_SAFETY = "list-safety"  # an address list would open up, or its ledger would not fit
    FOREIGN_RULE = "foreign-rule"  # a saved plan touches a rule allowlist does not own
    BAD_CHANGE = "bad-change"  # a saved plan holds a change no plan could have made
    STALE_PLAN = "stale-plan"  # a saved plan no longer matches the firewalls or the apps
    # Lifted by --force.
    DELETE_THRESHOLD = "delete-threshold"
    # Worth knowing; never stops anything.
    TAMPERED = "tampered"  # a prefixed rule whose range is not the one its name says: left alone
    UNPARSED = "not-managed"  # carries the prefix but is not a name allowlist writes: left alone
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Finding:
    kind: Kind
    message: str
    target: str = ""  # the target's resource ID; empty for the whole plan

    def line(self, name: str | None = None) -> str:
        where = name if name is not None else self.target.rsplit("/", 1)[-1]
        return f"{where}: {self.message}" if where else self.message
