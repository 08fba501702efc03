"""`allowlist audit`: which database firewalls in scope are unsafe or stale, and how to fix them. Read-only."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from allowlist.cli import options as o
from allowlist.cli.outcome import EXIT_CHANGES, EXIT_ERROR, EXIT_OK


class AuditFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    sarif = "sarif"


class FailOn(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    never = "never"


def audit(
    config: o.ConfigOpt = None,
    subscriptions: Annotated[
        list[str] | None,
        typer.Option(
            "--subscription",
            "-s",
            metavar="SUBSCRIPTION_ID",
            help="Subscription to audit. Repeatable. Default: the config's, else every one visible.",
        ),
    ] = None,
    output: Annotated[
        AuditFormat, typer.Option("--output", "-o", metavar="FORMAT", help="text, json, markdown or sarif.")
    ] = AuditFormat.text,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on",
            metavar="SEVERITY",
            help="Exit 2 when a finding is at least this severe: critical, high, medium, low or never.",
        ),
    ] = FailOn.high,
    prefix: o.PrefixOpt = None,
    concurrency: o.ConcurrencyOpt = None,
    timeout: o.TimeoutOpt = None,
    arm_endpoint: o.EndpointOpt = None,
    quiet: o.QuietOpt = False,
) -> int:
    """Judge every SQL, PostgreSQL, MySQL, Cosmos DB, Storage, Redis and Key Vault firewall in the subscriptions
    in scope (configured or not) against the apps' real addresses: Allow-Azure-services rules, open and wide
    ranges, stale rules, accounts that accept every address. Writes nothing."""  # fmt: skip
    from allowlist.audit import SEVERITIES
    from allowlist.audit import audit as judge
    from allowlist.auditreport import render_audit, summary
    from allowlist.cli.progress import close
    from allowlist.inventory import audit_scope, read_estate

    common = o.Common(config=config, prefix=prefix, concurrency=concurrency, timeout=timeout,
                      arm_endpoint=arm_endpoint, quiet=quiet, output=o.OutputFormat.json if output in (
                          AuditFormat.json, AuditFormat.sarif) else o.OutputFormat.text)  # fmt: skip
    scope = o.resolve_scope(common, need_targets=False)
    wide = audit_scope(scope, subscriptions or [])
    clients = o.make_clients(common.arm_endpoint, scope.settings)
    common.note(f"Reading every firewall and app in scope from {clients.settings.endpoint} ...")
    progress = common.progress()
    try:
        estate = read_estate(scope, wide, clients, progress)
    finally:
        close(progress)
    result = judge(estate.resources, estate.discovery.apps, scope.settings.prefix, estate.feeders)
    incomplete = tuple(f"{i.scope}: {i.message}" for i in estate.issues)
    artifact = str(config) if config is not None else "allowlist.toml"
    o.emit(render_audit(result, output.value, incomplete, artifact))
    if output in (AuditFormat.json, AuditFormat.sarif, AuditFormat.markdown):
        common.note(summary(result))
    if incomplete:
        common.note("error: the audit is incomplete: some subscriptions or servers could not be read (listed above)")
        return EXIT_ERROR
    if fail_on != FailOn.never and result.at_least(SEVERITIES[fail_on.value]):
        return EXIT_CHANGES
    return EXIT_OK
