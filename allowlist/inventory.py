"""What `allowlist audit` reads: every supported server and account in the subscriptions in scope (configured
or not), found with one paged Resource Graph query, each firewall read by its own back end's reader, and
every app in those subscriptions. Read-only, within the reader role."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from allowlist.armerrors import describe, raise_if_fatal
from allowlist.audit import Audited
from allowlist.azure import ArmClients
from allowlist.errors import ConfigError
from allowlist.model import AppEgress, Discovery, DiscoveryIssue, Progress, TargetRef
from allowlist.scope import Scope, Selector, SyncBlock
from allowlist.sources.appservice import discover, subscriptions_in
from allowlist.sync import read_targets
from allowlist.targets.registry import BACKENDS, parse_target

# Access restrictions belong to apps, not databases: the audit judges database firewalls.
AUDITED = tuple(b for b in BACKENDS.values() if b.kind != "webapp")
RESOURCES = (
    "resources | where type in~ ("
    + ", ".join(f"'{b.arm_type.lower()}'" for b in AUDITED)
    + ") | project id, type, properties | order by id asc"
)


@dataclass(frozen=True)
class Estate:
    resources: tuple[Audited, ...]
    discovery: Discovery
    feeders: dict[str, tuple[AppEgress, ...]]  # configured targets: the apps their [[sync]] blocks choose
    issues: tuple[DiscoveryIssue, ...]  # what could not be listed: the audit is then incomplete


def audit_scope(scope: Scope, subscriptions: Sequence[str]) -> Scope:
    """Every app in the audited subscriptions (stale means: no app in the estate uses it, not only the
    configured ones). Explicit subscriptions win; else the config's; else every subscription visible."""
    chosen = tuple(s.lower() for s in subscriptions)
    if not chosen and scope.blocks and not scope.all_subscriptions:
        chosen = tuple(sorted(set(scope.subscriptions) | {t.subscription_id for t in scope.targets}))
    block = SyncBlock("audit", (), Selector(subscriptions=chosen))
    return replace(scope, blocks=(block,))


def find_resources(
    clients: ArmClients, subscriptions: Sequence[str], issues: list[DiscoveryIssue]
) -> tuple[list[TargetRef], dict[str, dict[str, object]]]:
    """Every supported server and account in these subscriptions, with its ARM properties, by target key."""
    from allowlist.sources.resourcegraph import query

    refs: list[TargetRef] = []
    properties: dict[str, dict[str, object]] = {}
    try:
        for row in query(clients, RESOURCES, subscriptions):
            try:
                ref = parse_target(str(row.get("id", "")))
            except ConfigError:
                continue  # a row of a shape allowlist does not handle: not a firewall it can judge
            refs.append(ref)
            props = row.get("properties")
            properties[ref.key] = props if isinstance(props, dict) else {}
    except Exception as exc:
        raise_if_fatal(exc)
        issues.append(DiscoveryIssue("/providers/Microsoft.ResourceGraph", f"servers could not be listed: "
                                     f"{describe(exc)}"))  # fmt: skip
    return refs, properties


def read_estate(scope: Scope, wide: Scope, clients: ArmClients, progress: Progress | None = None) -> Estate:
    """`scope`: the config (for which apps feed which target); `wide`: what to audit (see audit_scope)."""
    issues: list[DiscoveryIssue] = []
    subscriptions = subscriptions_in(wide, clients, issues)
    if not subscriptions:
        raise ConfigError("no subscriptions to audit: give --subscription, or sign in to an account that sees some")
    wide = audit_scope(wide, subscriptions)  # named, so discovery does not list the subscriptions again
    with clients.event_loop(), ThreadPoolExecutor(max_workers=2) as pool:  # every read through the loop
        discovering = pool.submit(discover, wide, clients, progress)
        refs, properties = find_resources(clients, subscriptions, issues)
        settings = scope.settings
        firewalls = read_targets(refs, clients, settings.concurrency, settings.prefix, progress)
        discovery = discovering.result()
    feeding = scope.apps_by_target(discovery.apps) if scope.blocks else {}
    return Estate(
        tuple(Audited(r, firewalls[r.key], properties[r.key]) for r in refs),
        discovery,
        {key: tuple(apps) for key, apps in feeding.items()},
        tuple(issues) + discovery.issues,
    )
