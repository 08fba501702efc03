"""Benchmark: `allowlist plan` against a sequential one-GET-per-app script, on one generated estate.

Both run against the same emulator with the same added latency and ARM's throttling, in the same
process, alternating, so their medians and their ratio are comparable. Run: `make bench`.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from results import publish

from allowlist.azure import ArmClients, ArmSettings, StaticTokenCredential
from allowlist.emulator import Emulator, FaultConfig
from allowlist.emulator.generate import generate_estate
from allowlist.model import TargetRef
from allowlist.scope import Scope, Selector, Settings, SyncBlock
from allowlist.sources.appservice import to_egress
from allowlist.sync import make_plan
from allowlist.targets.registry import parse_target


def baseline(clients: ArmClients, subscriptions: list[str], targets: list[TargetRef]) -> int:
    """What teams script today: list app names, GET every app and slot one by one, then each firewall."""
    apps = 0
    for sub in subscriptions:
        web = clients.client("web", sub).web_apps
        for site in list(web.list()):
            group = site.id.split("/")[4]
            full = web.get(group, site.name)
            to_egress(full, "possible")
            apps += 1
            for slot in web.list_slots(group, site.name):
                to_egress(web.get_slot(group, site.name, slot.name.split("/")[-1]), "possible")
                apps += 1
    for target in targets:
        list(
            clients.client("sql", target.subscription_id).firewall_rules.list_by_server(
                target.resource_group, target.name
            )
        )
    return apps


def measure(fn: Callable[[], object], emu: Emulator) -> tuple[float, int]:
    emu.reset_log()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started, len(emu.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--apps", type=int, default=150, help="apps per subscription")
    parser.add_argument("--latency-ms", type=float, default=15.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--record", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args()

    state = generate_estate(args.subscriptions, args.apps)
    subs = sorted(s.subscription_id for s in state.subscriptions.values())
    targets = [parse_target(s.id) for s in state.servers.values()]
    scope = Scope(Settings(retry_backoff=0), (SyncBlock("all", tuple(targets), Selector()),))
    faults = FaultConfig(latency_ms=args.latency_ms)  # ARM's throttling stays on
    with Emulator(state, page_size=args.page_size, faults=faults) as emu:
        clients = ArmClients(
            ArmSettings(endpoint=emu.base_url, ca_bundle=str(emu.ca_path), retry_backoff=0),
            StaticTokenCredential("bench"),
        )
        ours: list[tuple[float, int]] = []
        theirs: list[tuple[float, int]] = []
        app_count = 0
        plan = None
        for _ in range(args.runs):
            plan_time = measure(lambda: make_plan(scope, clients), emu)
            ours.append(plan_time)
            theirs.append(measure(lambda: baseline(clients, subs, targets), emu))
        reading = make_plan(scope, clients)
        plan = reading.plan
        app_count = len(reading.discovery.apps)

    ours_t = statistics.median(t for t, _ in ours)
    theirs_t = statistics.median(t for t, _ in theirs)
    ours_n, theirs_n = ours[0][1], theirs[0][1]
    rules = sum(len(t.changes) for t in plan.targets)
    lines = [
        f"### {time.strftime('%Y-%m-%d')} — {args.subscriptions} subscriptions, {app_count} apps and slots, "
        f"{len(targets)} SQL servers",
        "",
        f"Emulator: {args.latency_ms:g} ms added per request, page size {args.page_size}, ARM throttling on. "
        f"Median of {args.runs} runs, alternating. Python {platform.python_version()}, {platform.machine()}, "
        f"{platform.processor() or 'cpu'}; default concurrency 8.",
        "",
        "| | ARM requests | wall time (median) |",
        "|---|---:|---:|",
        f"| `allowlist plan` (paged site index per subscription, site list per group, concurrent) "
        f"| {ours_n} | {ours_t:.2f} s |",
        f"| baseline (sequential, one GET per app and slot) | {theirs_n} | {theirs_t:.2f} s |",
        f"| ratio | {theirs_n / ours_n:.1f}x fewer | {theirs_t / ours_t:.1f}x faster |",
        "",
        f"The plan: {rules} rules to create across {len(targets)} servers (apps share stamps, so ranges merge).",
        "",
    ]
    publish("\n".join(lines), args.record)


if __name__ == "__main__":
    main()
