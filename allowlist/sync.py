"""The read side of a run: discover apps and read every target's rules, concurrently, into a Plan."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from allowlist.azure import ArmClients, describe, raise_if_auth
from allowlist.config import Scope
from allowlist.model import TargetRef
from allowlist.planner import Plan, build_plan
from allowlist.sources.appservice import Discovery, discover
from allowlist.targets.base import Firewall
from allowlist.targets.registry import open_target


def read_targets(
    targets: Sequence[TargetRef], clients: ArmClients, concurrency: int, prefix: str
) -> dict[str, Firewall | str]:
    """Each target's firewall (one read each), or the reason it could not be read."""

    def read(target: TargetRef) -> Firewall | str:
        try:
            return open_target(target, clients).read(prefix)
        except Exception as exc:  # an SDK or transport error: this target is skipped, the run fails
            raise_if_auth(exc)
            return f"could not read firewall rules: {describe(exc)}"

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return dict(zip((t.key for t in targets), pool.map(read, targets), strict=True))


def make_plan(scope: Scope, clients: ArmClients) -> tuple[Plan, Discovery]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        discovering = pool.submit(discover, scope, clients)
        reading = pool.submit(read_targets, scope.targets, clients, scope.settings.concurrency, scope.settings.prefix)
        discovery, existing = discovering.result(), reading.result()
    return build_plan(scope, discovery, existing), discovery
