"""`allowlist ips`: the apps in scope and the addresses they connect from."""

from __future__ import annotations

from allowlist.cli import options as o


def ips(
    config: o.ConfigOpt = None,
    target: o.TargetOpt = None,
    subscription: o.SubscriptionOpt = None,
    resource_group: o.GroupOpt = None,
    name: o.NameOpt = None,
    tag: o.TagOpt = None,
    kind: o.KindOpt = None,
    no_slots: o.NoSlotsOpt = False,
    current_only: o.CurrentOpt = False,
    concurrency: o.ConcurrencyOpt = None,
    arm_endpoint: o.EndpointOpt = None,
    output: o.OutputOpt = o.OutputFormat.text,
    verbose: o.VerboseOpt = False,
    quiet: o.QuietOpt = False,
) -> int:
    """List every app (and slot) in scope with its outbound IPv4 ranges, and the apps that are not pinned."""
    from allowlist.report import render_apps
    from allowlist.sources.appservice import discover

    flags = o.ScopeFlags(
        config, tuple(target or ()), tuple(subscription or ()), tuple(resource_group or ()), tuple(name or ()),
        tuple(tag or ()), tuple(kind or ()), no_slots, current_only, concurrency=concurrency,
    )  # fmt: skip
    scope = o.resolve_scope(flags, need_targets=False)
    clients = o.make_clients(arm_endpoint, scope.settings)
    o.note(f"Reading apps from {clients.settings.endpoint} ...", quiet)
    found = discover(scope, clients)
    apps = [a for a in found.apps if any(b.selector.matches(a) for b in scope.blocks)]
    o.emit(render_apps(apps, o.fmt(output), verbose))
    for issue in found.issues:
        o.note(f"warning: {issue.scope}: {issue.message}", quiet)
    return 1 if found.issues else 0
