"""`allowlist audit`: judge every database firewall in scope against the addresses the apps really use.

Pure: it takes what was read (each server's or account's firewall and ARM properties, and the apps of the
estate) and returns findings, each with a severity, the rule, why it matters and the fix. Unlike a template
linter it knows which addresses the apps need, so it can call a rule stale and say what would replace
"Allow Azure services".
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from allowlist.model import AppEgress, ExistingRule, IpRange, TargetRef
from allowlist.naming import parse_rule_name
from allowlist.planner import desired_ranges
from allowlist.targetchecks import WIDEST_PREFIX, too_wide
from allowlist.targets.base import Firewall
from allowlist.targets.registry import capabilities


class Severity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Check:
    """One kind of finding: an ID that stays stable across versions (SARIF rule IDs, suppressions)."""

    id: str
    severity: Severity
    title: str
    why: str


CHECKS = {
    c.id: c
    for c in (
        Check("AL001", Severity.CRITICAL, "Firewall open to the whole internet",
              "a rule covering every IPv4 address turns the firewall off: anyone who has or guesses a credential "
              "can connect"),
        Check("AL002", Severity.HIGH, "Allow Azure services",
              "AllowAllWindowsAzureIps (0.0.0.0) lets any Azure tenant connect, not only your apps: every VM and "
              "function anyone runs in Azure"),
        Check("AL003", Severity.HIGH, "Account accepts every address",
              "the account's IP rules are not enforced, so every address on the internet can reach it"),
        Check("AL004", Severity.MEDIUM, f"Range wider than a /{WIDEST_PREFIX}",
              f"a rule wider than a /{WIDEST_PREFIX} opens tens of thousands of addresses that are not your apps'"),
        Check("AL005", Severity.MEDIUM, "Stale rule",
              "no app in the estate connects from any address in this rule: it opens access nobody here needs"),
        Check("AL006", Severity.LOW, "Stale allowlist rule",
              "allowlist made this rule for an address no app uses any more; the next apply removes it"),
        Check("AL007", Severity.LOW, "Public network access",
              "the server is reachable from the internet, guarded only by its firewall rules"),
        Check("AL008", Severity.MEDIUM, "Firewall could not be read",
              "a firewall allowlist cannot read cannot be judged"),
    )
}  # fmt: skip
SEVERITIES = {s.label: s for s in Severity}


@dataclass(frozen=True)
class Audited:
    """One server or account as read: its firewall (or why it could not be read) and its ARM properties."""

    ref: TargetRef
    firewall: Firewall | str
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditFinding:
    check: Check
    target: TargetRef
    rule: str  # the rule or entry the finding is about; "" for the resource itself
    message: str
    fix: str

    @property
    def severity(self) -> Severity:
        return self.check.severity

    @property
    def fingerprint(self) -> str:
        """Stable across runs, so code scanning tracks one finding instead of opening a new one each hour."""
        return hashlib.sha256(f"{self.check.id}|{self.target.key}|{self.rule.lower()}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Audit:
    findings: tuple[AuditFinding, ...]
    resources: int  # servers and accounts judged
    apps: int

    def at_least(self, severity: Severity) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if f.severity >= severity)


ANY_AZURE = IpRange(0, 0, 4)  # how SQL, PostgreSQL and MySQL spell "Allow Azure services"
EVERYTHING = IpRange(0, 2**32 - 1, 4)


def audit(resources: Sequence[Audited], apps: Sequence[AppEgress], prefix: str,
          feeders: Mapping[str, Sequence[AppEgress]]) -> Audit:  # fmt: skip
    """Findings for every resource, most severe first. `feeders`: the apps configured to feed a target, by
    target key; other targets are measured against the apps in their own resource group (a first guess)."""
    # On IpRange's one number line (IPv6 after IPv4), so one sorted list answers "is any app in this range?"
    addresses = sorted({IpRange.parse(a).span[0] for app in apps for a in (*app.ipv4, *app.ipv6)})
    found: list[AuditFinding] = []
    for resource in resources:
        ref = resource.ref
        if isinstance(resource.firewall, str):
            found.append(_finding("AL008", ref, "", resource.firewall,
                                  "grant the allowlist App Reader role on it, or leave it out of scope"))  # fmt: skip
            continue
        found += _judge_rules(resource.firewall, ref, addresses, prefix, _guess(ref, apps, feeders))
        found += _judge_settings(resource, ref)
    found.sort(key=lambda f: (-f.severity, f.target.key, f.check.id, f.rule.lower()))
    return Audit(tuple(found), len(resources), len(apps))


def _guess(ref: TargetRef, apps: Sequence[AppEgress], feeders: Mapping[str, Sequence[AppEgress]]) -> tuple[int, str]:
    """How many rules the apps behind this target need, and which apps those are: the configured ones, else
    the apps in its resource group, else in its subscription (a first guess, said as such)."""
    if ref.key in feeders:
        chosen, basis = list(feeders[ref.key]), "the apps your config syncs to it"
    else:
        sub = f"/subscriptions/{ref.subscription_id}/resourcegroups/".lower()
        chosen = [a for a in apps if a.id.lower().startswith(f"{sub}{ref.resource_group.lower()}/")]
        basis = f"the apps in its resource group {ref.resource_group}"
        if not chosen:
            chosen, basis = [a for a in apps if a.id.lower().startswith(sub)], "the apps in its subscription"
    return len(desired_ranges([a for a in chosen if a.pinned])), basis


def _judge_rules(firewall: Firewall, ref: TargetRef, addresses: list[int], prefix: str,
                 guess: tuple[int, str]) -> Iterable[AuditFinding]:  # fmt: skip
    caps = capabilities(ref.kind)
    for rule in firewall.rules:
        r = rule.range
        shown = _shown(rule)
        if r == ANY_AZURE:
            count, basis = guess
            if count:
                fix = f"remove it: allowlist can replace it with the {count} range(s) {basis} need (see allowlist plan)"
            else:
                fix = f"remove it, and sync the apps that use it with allowlist ({basis} have no pinned addresses)"
            yield _finding("AL002", ref, rule.name, f"{shown} lets any Azure tenant connect", fix)
        elif r == EVERYTHING:
            yield _finding("AL001", ref, rule.name, f"{shown} allows every IPv4 address",
                           "remove it, and let allowlist open the ranges the apps need")  # fmt: skip
        elif too_wide(r):
            yield _finding("AL004", ref, rule.name, f"{shown} opens {r.size:,} addresses",
                           "narrow it to the addresses that need access, or split it")  # fmt: skip
        elif not _used(r, addresses) and not _private(r):
            ours = rule.name in (firewall.owned or ()) if not caps.named_ranges else \
                parse_rule_name(prefix, rule.name, caps) == r  # fmt: skip
            if ours:
                yield _finding("AL006", ref, rule.name, f"{shown} matches no app's address", "run allowlist apply")
            else:
                yield _finding("AL005", ref, rule.name, f"{shown} matches no app's address",
                               "remove it; if a person or a partner needs it, list it as addresses in a [[sync]] "
                               "block with a label, so it is owned and explained")  # fmt: skip


def _judge_settings(resource: Audited, ref: TargetRef) -> Iterable[AuditFinding]:
    props = resource.properties
    acls, network = props.get("networkAcls"), props.get("network")  # network: flexible servers
    acls = acls if isinstance(acls, Mapping) else None
    network = network if isinstance(network, Mapping) else {}
    public = str(props.get("publicNetworkAccess") or network.get("publicNetworkAccess") or "Enabled")
    firewall = resource.firewall
    assert isinstance(firewall, Firewall)
    if ref.kind in ("storage", "keyvault") and acls is not None and acls.get("defaultAction") == "Allow":
        if public.lower() != "disabled":
            yield _finding("AL003", ref, "", "networkAcls.defaultAction is Allow",
                           "set defaultAction to Deny once allowlist apply has added the apps' ranges")  # fmt: skip
    elif ref.kind in ("cosmosdb", "redis") and firewall.count == 0 and public.lower() != "disabled":
        if not props.get("isVirtualNetworkFilterEnabled"):
            yield _finding("AL003", ref, "", "no IP rules, so every address can connect",
                           "sync the apps that use it with allowlist, then confirm no one else needs it")  # fmt: skip
    elif ref.kind in ("sql", "postgresql", "mysql") and public.lower() == "enabled" and firewall.count:
        fix = "keep the firewall rules exact (allowlist), or use private endpoints for VNet-integrated apps"
        yield _finding("AL007", ref, "", "publicNetworkAccess is Enabled", fix)


def _finding(check: str, ref: TargetRef, rule: str, message: str, fix: str) -> AuditFinding:
    return AuditFinding(CHECKS[check], ref, rule, message, fix)


def _shown(rule: ExistingRule) -> str:
    span = str(rule.range)
    return f"entry {rule.name}" if rule.name in (span, rule.range.first) or "/" in rule.name else \
        f"rule '{rule.name}' ({span})"  # fmt: skip


def _used(r: IpRange, addresses: list[int]) -> bool:
    first, last = r.span
    i = bisect.bisect_left(addresses, first)
    return i < len(addresses) and addresses[i] <= last


def _private(r: IpRange) -> bool:
    """Private and reserved space never reaches a public firewall from the internet: not worth a finding."""
    first, last = ipaddress.ip_address(r.first), ipaddress.ip_address(r.last)
    return (first.is_private or first.is_reserved) and (last.is_private or last.is_reserved)
