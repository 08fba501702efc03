"""Executing a Plan: safety first, then per target creates before deletes, targets in parallel."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

from allowlist.azure import ArmClients, describe, raise_if_auth
from allowlist.errors import PlanFileError, UnsafePlanError
from allowlist.model import TargetRef
from allowlist.planner import Change, Plan, TargetPlan, fingerprint
from allowlist.sync import read_targets
from allowlist.targets.base import ListTarget, RuleTarget, TargetWriteError
from allowlist.targets.registry import open_target


@dataclass(frozen=True)
class TargetResult:
    target: TargetRef
    done: tuple[Change, ...] = ()
    failed: tuple[tuple[Change, str], ...] = ()
    skipped: tuple[Change, ...] = ()  # not tried because an earlier write to this target failed

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class ApplyResult:
    targets: tuple[TargetResult, ...]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)

    def count(self, action: str) -> int:
        return sum(1 for t in self.targets for c in t.done if c.action == action)


def check_safe(plan: Plan, force: bool) -> None:
    problems = plan.problems(force)
    if problems:
        raise UnsafePlanError("the plan is unsafe, nothing was written:\n  " + "\n  ".join(problems))


def check_fresh(plan: Plan, clients: ArmClients) -> None:
    """Refuse a saved plan when any target's rules changed since it was made."""
    live = read_targets([t.target for t in plan.targets], clients, plan.settings.concurrency, plan.settings.prefix)
    stale = []
    for target_plan in plan.targets:
        firewall = live[target_plan.target.key]
        if isinstance(firewall, str):
            stale.append(f"{target_plan.target.id}: {firewall}")
        elif target_plan.error is None and fingerprint(firewall) != target_plan.fingerprint:
            stale.append(f"{target_plan.target.id}: its firewall rules changed since the plan was made")
    if stale:
        raise PlanFileError("the saved plan is stale, nothing was written; run plan again:\n  " + "\n  ".join(stale))


def write_order(target_plan: TargetPlan) -> list[Change]:
    """Creates and updates before deletes, except the creates that would overflow the rule limit.

    Those wait until stale rules are gone; stale rules hold no address any app in scope needs.
    """
    creates = [c for c in target_plan.changes if c.action != "delete"]
    deletes = list(target_plan.of("delete"))
    room = max(0, target_plan.rule_limit - target_plan.existing_count)
    fits = [c for c in creates if c.action == "update"] + [c for c in creates if c.action == "create"][:room]
    later = [c for c in creates if c not in fits]
    return fits + deletes + later


def _failure(exc: Exception, target_plan: TargetPlan) -> str:
    raise_if_auth(exc)
    reason = str(exc) if isinstance(exc, TargetWriteError) else describe(exc)
    if isinstance(exc, TargetWriteError) and exc.limit_hit:
        reason += (
            " (the server refused another rule: its limit is lower than"
            f" rule_limit = {target_plan.rule_limit}, or rules were added meanwhile)"
        )
    return reason


def _write_rules(target: RuleTarget, target_plan: TargetPlan) -> TargetResult:
    steps = write_order(target_plan)
    done: list[Change] = []
    for i, change in enumerate(steps):
        try:
            if change.action == "delete":
                target.delete_rule(change.name)
            else:
                target.put_rule(change.name, change.range)
        except Exception as exc:  # stop this target: a later delete may rely on this write
            return TargetResult(
                target_plan.target, tuple(done), ((change, _failure(exc, target_plan)),), tuple(steps[i + 1 :])
            )
        done.append(change)
    return TargetResult(target_plan.target, tuple(done))


def _write_list(target: ListTarget, target_plan: TargetPlan, prefix: str) -> TargetResult:
    """One PATCH: additions and removals land together, with the ledger, so no window lacks an entry."""
    add = [c.name for c in target_plan.changes if c.action != "delete"]
    remove = [c.name for c in target_plan.of("delete")]
    try:
        target.replace_entries(prefix, add, remove)
    except Exception as exc:  # nothing was written: the service takes the list whole or not at all
        first = target_plan.changes[0]
        return TargetResult(target_plan.target, (), ((first, _failure(exc, target_plan)),), target_plan.changes[1:])
    return TargetResult(target_plan.target, target_plan.changes)


def apply_plan(
    plan: Plan,
    clients: ArmClients,
    force: bool = False,
) -> ApplyResult:
    check_safe(plan, force)
    work = [t for t in plan.targets if t.has_changes and t.error is None]

    def run(target_plan: TargetPlan) -> TargetResult:
        target = open_target(target_plan.target, clients)
        if target.capabilities.named_ranges:
            return _write_rules(cast(RuleTarget, target), target_plan)
        return _write_list(cast(ListTarget, target), target_plan, plan.settings.prefix)

    with ThreadPoolExecutor(max_workers=plan.settings.concurrency) as pool:
        return ApplyResult(tuple(pool.map(run, work)))
