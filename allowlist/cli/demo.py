"""`allowlist demo`: the whole job on the built-in demo estate, against the local emulator."""

from __future__ import annotations

from allowlist.cli import options as o


def demo(output: o.OutputOpt = o.OutputFormat.text, verbose: o.VerboseOpt = False) -> int:
    """Start the emulator with the demo estate, then run ips, plan, apply --yes, and plan again."""
    from allowlist.apply import apply_plan
    from allowlist.azure import ArmClients, ArmSettings, StaticTokenCredential
    from allowlist.config import load_scope
    from allowlist.emulator import Emulator, demo_estate_path, load_estate
    from allowlist.report import render_apps, render_plan, render_result
    from allowlist.scope import Scope, Selector, SyncBlock
    from allowlist.sources.appservice import discover
    from allowlist.sync import make_plan

    fmt = o.Common(output=output).format
    estate = load_estate(demo_estate_path())
    scope = load_scope(demo_estate_path().with_name("demo-config.toml"))
    with Emulator(estate.state, page_size=estate.page_size) as emu:
        settings = ArmSettings(
            endpoint=emu.base_url, ca_bundle=str(emu.ca_path), poll_interval=scope.settings.poll_interval
        )
        clients = ArmClients(settings, StaticTokenCredential("demo-token"))
        o.note(f"Demo estate served by the local ARM emulator at {emu.base_url}\n")
        o.note("== 1. allowlist ips: every app and the addresses it connects from")
        everything = Scope(scope.settings, (SyncBlock("every app", (), Selector()),))
        o.emit(render_apps(discover(everything, clients).apps, fmt, verbose))
        first = make_plan(scope, clients).plan
        o.note("\n== 2. allowlist plan: what would change (nothing is written)")
        o.emit(render_plan(first, fmt, verbose))
        o.note("\n== 3. allowlist apply --yes: creates first, then removes stale rules allowlist owns")
        result = apply_plan(first, clients)
        o.emit(render_result(result, fmt))
        o.note("\n== 4. allowlist plan again: the firewalls are in step")
        second = make_plan(scope, clients).plan
        o.emit(render_plan(second, fmt, verbose))
        config = demo_estate_path().with_name("demo-config.toml")
        o.note(
            f"\n{len(emu.requests)} ARM requests in all. Try it yourself: run `allowlist emulator`, export the three "
            f"variables it prints, then `allowlist plan -c {config}`."
        )
    return 0 if result.ok and not second.has_changes else 1
