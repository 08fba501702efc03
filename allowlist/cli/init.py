"""`allowlist init`: draft a commented allowlist.toml from the subscriptions, servers and apps ARM shows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allowlist.cli import options as o
from allowlist.errors import ConfigError


def init(
    out: Annotated[
        Path, typer.Option("--out", metavar="PATH|-", help="Where to write (never over a file), or - for stdout.")
    ] = Path("allowlist.toml"),
    subscriptions: o.SubscriptionOpt = None,
    arm_endpoint: o.EndpointOpt = None,
    quiet: o.QuietOpt = False,
) -> int:
    """Write a commented allowlist.toml from what ARM shows: the subscriptions, every supported server and
    account, and the apps in each one's resource group as a first guess. Never overwrites a file."""
    from allowlist.config import scope_from_flags
    from allowlist.initconfig import draft_config
    from allowlist.inventory import find_resources
    from allowlist.model import DiscoveryIssue
    from allowlist.scope import Settings
    from allowlist.sources.appservice import discover, subscriptions_in

    to_stdout = str(out) == "-"
    if not to_stdout and out.exists():
        raise ConfigError(f"{out} already exists: allowlist init never overwrites a file (give --out NEW_PATH)")
    settings = Settings()
    scope = scope_from_flags(settings, [], list(subscriptions or []), [], [], [], [], slots=True)
    clients = o.make_clients(arm_endpoint, settings)
    o.note(f"Reading subscriptions, servers and apps from {clients.settings.endpoint} ...", quiet)
    issues: list[DiscoveryIssue] = []
    found_subscriptions = subscriptions_in(scope, clients, issues)
    refs, _ = find_resources(clients, found_subscriptions, issues)
    # The subscriptions found, named: discovery does not list them again.
    scope = scope_from_flags(settings, [], found_subscriptions, [], [], [], [], slots=True)
    discovery = discover(scope, clients)
    problems = [f"{i.scope}: {i.message}" for i in (*issues, *discovery.issues)]
    if problems:
        raise ConfigError(
            "could not read everything needed for a draft; nothing was written:\n  " + "\n  ".join(problems)
        )
    if not refs:
        raise ConfigError(
            f"found no supported server or account in {len(found_subscriptions)} subscription(s); nothing was "
            "written (give --subscription, or check that the credential can read them)"
        )
    text = draft_config(found_subscriptions, refs, discovery.apps)
    if to_stdout:
        o.emit(text)
        return 0
    try:
        with out.open("x", encoding="utf-8") as handle:  # "x": fails if the file appeared meanwhile
            handle.write(text)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write: {exc.strerror or exc}") from exc
    o.note(f"wrote {out}: {len(refs)} server(s) and account(s). Review it, then run: allowlist plan -c {out}", quiet)
    return 0
