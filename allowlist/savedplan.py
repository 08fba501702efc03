"""`apply FILE` trusts nothing in the file that it can check again.

The saved plan's scope is discovered afresh and every target read again; the plan a fresh run would
make is the one that gets written, and only if the file asks for exactly that. Every change in the file
is also checked on its own against the live firewalls (ownership by name grammar or ledger, protected
names, the /16 cap, the rule limit, the delete threshold), so a plan edited between two pipeline stages
is refused with one line per problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from allowlist.azure import ArmClients
from allowlist.findings import Finding, Kind
from allowlist.model import AppEgress, IpRange
from allowlist.naming import parse_rule_name
from allowlist.planner import Plan, TargetPlan, ownership
from allowlist.sync import make_plan
from allowlist.targetchecks import WIDEST_PREFIX, delete_threshold, too_wide
from allowlist.targets.addresslist import entry_range
from allowlist.targets.base import Firewall
from allowlist.targets.registry import capabilities


def recheck(saved: Plan, clients: ArmClients) -> Plan:
    """The fresh plan for the saved plan's scope, carrying a finding for every way the file disagrees."""
    if saved.scope is None:
        raise ValueError("a saved plan always records its scope")
    reading = make_plan(replace(saved.scope, settings=saved.settings), clients)
    fresh = reading.plan
    findings: list[Finding] = []
    live = {t.target.key: t for t in fresh.targets}
    saved_keys = {t.target.key for t in saved.targets}
    if saved_keys != set(live):
        findings.append(Finding(Kind.BAD_CHANGE, "the plan's targets are not the ones its scope names"))
    for target_plan in saved.targets:
        firewall = reading.firewalls.get(target_plan.target.key)
        if isinstance(firewall, Firewall):
            findings += check_changes(target_plan, firewall, saved)
    if not findings:
        findings += _staleness(saved, fresh)
    # What the fresh plan finds itself is said once, in its words.
    known = {(f.kind, f.target) for f in fresh.findings}
    return replace(fresh, extra=tuple(f for f in findings if (f.kind, f.target) not in known))


def check_changes(target_plan: TargetPlan, firewall: Firewall, plan: Plan) -> list[Finding]:
    """Each change against the live firewall, as the planner would have made it."""
    settings, tid = plan.settings, target_plan.target.id
    caps = capabilities(target_plan.target.kind)
    present = {r.name.casefold(): r for r in firewall.rules}
    found: list[Finding] = []
    creates = target_plan.of("create")
    deletes = target_plan.of("delete")
    for change in deletes:
        rule = present.get(change.name.casefold())
        if rule is None:
            found.append(Finding(Kind.STALE_PLAN, f"would delete '{change.name}', which is not there", tid))
        elif caps.named_ranges and ownership(rule.name, rule.range, settings.prefix, caps) != "managed":
            found.append(Finding(Kind.FOREIGN_RULE, f"would delete '{rule.name}', which allowlist does not own", tid))
        elif not caps.named_ranges and change.name.casefold() not in (firewall.owned or ()):
            found.append(Finding(Kind.FOREIGN_RULE, f"would remove '{change.name}', which its ledger does not "
                                 "prove allowlist added", tid))  # fmt: skip
        elif rule.range != change.range:
            found.append(Finding(Kind.BAD_CHANGE, f"would delete '{rule.name}' as {change.range}, but it holds "
                                 f"{rule.range}", tid))  # fmt: skip
    for change in creates:
        if caps.named_ranges:
            encoded = parse_rule_name(settings.prefix, change.name, caps)
            if encoded is None:
                found.append(Finding(Kind.BAD_CHANGE, f"would create '{change.name}', which is not a name allowlist "
                                     f"writes (prefix '{settings.prefix}' + the range it holds)", tid))  # fmt: skip
            elif encoded != change.range:
                found.append(Finding(Kind.BAD_CHANGE, f"would create '{change.name}' holding {change.range}, but its "
                                     f"name says {encoded}", tid))  # fmt: skip
            elif not caps.valid_name(change.name):
                found.append(Finding(Kind.INVALID_NAME, f"rule name '{change.name}' is not valid for a {caps.label}",
                                     tid))  # fmt: skip
        elif entry_range(change.name) != change.range:
            found.append(Finding(Kind.BAD_CHANGE, f"would add '{change.name}' as {change.range}, which is not what "
                                 "that entry holds", tid))  # fmt: skip
        if change.name.casefold() in present:
            found.append(Finding(Kind.NAME_TAKEN, f"would create '{change.name}', which exists already", tid))
        if not settings.allow_wide_ranges and too_wide(change.range):
            found.append(Finding(Kind.WIDE_RANGE, f"would write {change.range}, wider than a /{WIDEST_PREFIX}", tid))
    limit = settings.rule_limit or caps.default_rule_limit
    final = firewall.count + len(creates) - len(deletes)
    if final > limit:
        found.append(Finding(Kind.RULE_LIMIT, f"would hold {final} firewall rules, over the limit of {limit}", tid))
    if caps.named_ranges:
        managed = sum(ownership(r.name, r.range, settings.prefix, caps) == "managed" for r in firewall.rules)
    else:
        managed = len(firewall.owned or ())
    wanted = len(target_plan.keeps) + len(creates)
    threshold = delete_threshold(managed, len(deletes), wanted, settings)
    if threshold:
        found.append(Finding(Kind.DELETE_THRESHOLD, threshold, tid))
    return found


def _staleness(saved: Plan, fresh: Plan) -> list[Finding]:
    """The file asks for exactly what a fresh plan would do, or it is stale: say why."""
    found = []
    apps_changed = _changed_apps(saved.apps, fresh.apps)
    for old in saved.targets:
        new = next(t for t in fresh.targets if t.target.key == old.target.key)
        same = _writes(old) == _writes(new) and old.error is None and new.error is None
        if same and new.fingerprint == old.fingerprint:
            continue
        if new.fingerprint != old.fingerprint:
            why = "its firewall rules changed since the plan was made"
        elif apps_changed:
            why = "the apps changed since the plan was made: " + "; ".join(apps_changed[:5])
            why += f" (+{len(apps_changed) - 5} more)" if len(apps_changed) > 5 else ""
        else:
            why = "a fresh plan would make other changes"
        found.append(Finding(Kind.STALE_PLAN, f"the plan is stale: {why}; run plan again", old.target.id))
    return found


def _writes(target_plan: TargetPlan) -> set[tuple[str, str, IpRange]]:
    """What a plan would write; the apps behind each change are provenance, not part of the decision."""
    return {(c.action, c.name.casefold(), c.range) for c in target_plan.changes}


def _changed_apps(before: Sequence[AppEgress], after: Sequence[AppEgress]) -> list[str]:
    old = {a.id.lower(): a for a in before}
    new = {a.id.lower(): a for a in after}
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a is None and b is not None:
            out.append(f"{b.name} is new")
        elif b is None and a is not None:
            out.append(f"{a.name} is gone")
        elif a is not None and b is not None and (a.ipv4, a.pinned) != (b.ipv4, b.pinned):
            out.append(f"{a.name} now connects from {', '.join(b.ipv4) or 'no address'} (was {', '.join(a.ipv4)})")
    return out
