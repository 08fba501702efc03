"""`allowlist ips`: the apps in scope, the addresses they connect from, and how each was found."""

from __future__ import annotations

from typing import Annotated

import typer

from allowlist.cli import options as o


@o.with_common_options(planning=False)
def ips(
    common: o.Common,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show how each app's addresses were found: its egress mode and the chain of resources "
            "(site, subnet, NAT gateway, public IP or prefix; route table and firewall; environment).",
        ),
    ] = False,
) -> int:
    """List every app (and slot) in scope with its outbound IPv4 ranges, and the apps that are not pinned."""
    from allowlist.report import render_apps
    from allowlist.sources.appservice import discover

    scope = o.resolve_scope(common, need_targets=False)
    clients = o.make_clients(common.arm_endpoint, scope.settings)
    common.note(f"Reading apps from {clients.settings.endpoint} ...")
    found = discover(scope, clients)
    o.emit(render_apps(found.apps, common.format, common.verbose, explain))
    for issue in found.issues:
        common.note(f"warning: {issue.scope}: {issue.message}")
    return 1 if found.issues else 0
