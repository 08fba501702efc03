"""The read side of a run: discover apps and read every target's rules, concurrently, into a Plan."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from allowlist.armerrors import describe, raise_if_fatal
from allowlist.azure import ArmClients
from allowlist.model import Discovery, Progress, TargetRef
from allowlist.planner import Plan, build_plan
from allowlist.scope import Scope
from allowlist.sources.appservice import discover
from allowlist.targets.base import Firewall
from allowlist.targets.registry import open_target


@dataclass(frozen=True)
class Reading:
    """Everything one run read, and the plan made from it."""

    plan: Plan
    discovery: Discovery
    firewalls: dict[str, Firewall | str]  # by target key: the firewall, or why it could not be read


def read_target(target: TargetRef, clients: ArmClients, prefix: str) -> Firewall | str:
    """The target's firewall (one read), or the reason it could not be read."""
    try:
        return open_target(target, clients).read(prefix)
    except Exception as exc:  # an SDK or transport error: this target is skipped, the run fails
        raise_if_fatal(exc)
        return f"could not read firewall rules: {describe(exc)}"


def read_targets(
    targets: Sequence[TargetRef],
    clients: ArmClients,
    concurrency: int,
    prefix: str,
    progress: Progress | None = None,
) -> dict[str, Firewall | str]:
    def read(target: TargetRef) -> Firewall | str:
        found = read_target(target, clients, prefix)
        if progress is not None:
            progress.step("firewalls", 1, len(targets))
        return found

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return dict(zip((t.key for t in targets), pool.map(read, targets), strict=True))


def make_plan(scope: Scope, clients: ArmClients, progress: Progress | None = None) -> Reading:
    settings = scope.settings
    # Every read goes through one event loop (ArmClients.event_loop), at less CPU per call than a thread
    # each. It opens first (about 0.2 s): opened beside the first reads, it took over 2 s at 10,000 apps,
    # starved of the GIL by them, and 40% of the reads went the costlier synchronous way meanwhile.
    with clients.event_loop(), ThreadPoolExecutor(max_workers=2) as pool:
        discovering = pool.submit(discover, scope, clients, progress)
        reading = pool.submit(read_targets, scope.targets, clients, settings.concurrency, settings.prefix, progress)
        discovery, firewalls = discovering.result(), reading.result()
    return Reading(build_plan(scope, discovery, firewalls), discovery, firewalls)
