"""`allowlist ips`: the apps in scope and the addresses they connect from."""

from __future__ import annotations

from allowlist.cli import options as o


@o.with_common_options(planning=False)
def ips(common: o.Common) -> int:
    """List every app (and slot) in scope with its outbound IPv4 ranges, and the apps that are not pinned."""
    from allowlist.report import render_apps
    from allowlist.sources.appservice import discover

    scope = o.resolve_scope(common, need_targets=False)
    clients = o.make_clients(common.arm_endpoint, scope.settings)
    common.note(f"Reading apps from {clients.settings.endpoint} ...")
    found = discover(scope, clients)
    apps = [a for a in found.apps if any(b.selector.matches(a) for b in scope.blocks)]
    o.emit(render_apps(apps, common.format, common.verbose))
    for issue in found.issues:
        common.note(f"warning: {issue.scope}: {issue.message}")
    return 1 if found.issues else 0
