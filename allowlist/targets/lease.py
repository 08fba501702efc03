"""A lease per target, so two runs that overlap (a slow hourly run, a manual run) never interleave writes.

The lease is one tag on the target resource, `PREFIXlease = "RUN-ID EXPIRY"` (expiry in Unix seconds),
written through ARM's Tags API (`Microsoft.Resources/tags`), which works the same for every kind of
resource and needs only `Microsoft.Resources/tags/read` and `/write`. A run takes every lease it needs at
once, and reads each back a moment after writing it, before writing its target: whoever's ID is there
holds it (the last writer wins, and both writers see the same winner). A live lease of another run makes
this run skip that target; an expired one is taken over. Leases are renewed during long targets and
released at the end by setting their expiry to the moment of release, so the tag also tells the next run
when another run last wrote: a run that began reading apps before that moment may hold an older picture
of the apps than the writer did, so it adds but does not delete on that target.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from allowlist.armerrors import describe, raise_if_fatal
from allowlist.jsonshape import json_object
from allowlist.model import TargetRef

if TYPE_CHECKING:
    from allowlist.azure import ArmClients

TAGS_API = "2021-04-01"
ATTEMPTS = 3
CLOCK_SKEW = 30.0  # seconds two runners' clocks may disagree by (NTP keeps them far closer)


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def lease_tag(prefix: str) -> str:
    return f"{prefix}lease"


def parse_lease(value: object) -> tuple[str, float] | None:
    """`"RUN-ID EXPIRY"` -> (run id, expiry); None for anything else (treated as no lease)."""
    if not isinstance(value, str):
        return None
    run_id, _, expiry = value.strip().partition(" ")
    try:
        return (run_id, float(expiry)) if run_id else None
    except ValueError:
        return None


@dataclass
class Lease:
    ref: TargetRef
    clients: ArmClients
    prefix: str
    run_id: str
    seconds: float
    began: float = 0.0  # when this run began reading apps (time.time())
    clock: Callable[[], float] = time.time
    taken_at: float = 0.0
    value: str = ""  # the tag value last written
    newer_writer: str | None = None  # another run that wrote this target after this run began

    def _send(self, method: str, body: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        url = f"{self.ref.id}/providers/Microsoft.Resources/tags/default?api-version={TAGS_API}"
        last: Exception | None = None
        for _ in range(ATTEMPTS):  # PATCH is not retried by the SDK on a dropped connection
            try:
                response = self.clients.send(method, url, body)
                payload = response.json() if response.content else {}
                return payload if isinstance(payload, Mapping) else {}
            except Exception as exc:  # an SDK or transport error: try again, then report it
                raise_if_fatal(exc)
                last = exc
        assert last is not None
        raise last

    def last(self) -> tuple[str, float] | None:
        """The lease tag as it is: the run that last held it, and when it expires or was released."""
        tags = json_object(self._send("GET").get("properties")).get("tags")
        return parse_lease(json_object(tags).get(lease_tag(self.prefix)))

    def holder(self) -> tuple[str, float] | None:
        """Who holds the lease now, and until when; None when nobody holds a live one."""
        found = self.last()
        return found if found is not None and found[1] > self.clock() else None

    def _write(self, until: float) -> None:
        self.value = f"{self.run_id} {until:.3f}"
        self._send("PATCH", {"operation": "Merge", "properties": {"tags": {lease_tag(self.prefix): self.value}}})

    def offer(self) -> str | None:
        """Write our lease unless another run holds a live one; returns why not, or None."""
        try:
            found = self.last()
            if found is not None and found[0] != self.run_id:
                left = int(found[1] - self.clock())
                if found[1] > self.clock():
                    return f"another allowlist run ({found[0]}) holds its lease for {left} s more"
                if found[1] > self.began - CLOCK_SKEW:
                    self.newer_writer = found[0]
            self.taken_at = self.clock()
            self._write(self.taken_at + self.seconds)
        except Exception as exc:  # the lease could not be taken: this target is skipped
            raise_if_fatal(exc)
            return f"could not take its lease: {describe(exc)}"
        return None

    def confirm(self) -> str | None:
        """After every run that offered has written: ours only if our ID is the one there."""
        try:
            held = self.holder()
        except Exception as exc:
            raise_if_fatal(exc)
            return f"could not read its lease back: {describe(exc)}"
        if held is None or held[0] != self.run_id:
            who = held[0] if held else "nobody"
            return f"another allowlist run ({who}) took its lease at the same moment"
        return None

    def renew_if_due(self) -> None:
        if self.clock() - self.taken_at > self.seconds / 3:
            self.taken_at = self.clock()
            self._write(self.taken_at + self.seconds)

    def release(self) -> None:
        """Expire the lease now; the tag stays, saying when this run last wrote."""
        try:
            if self.confirm() is None:
                self._write(self.clock())
        except Exception as exc:  # an unreleased lease expires by itself
            raise_if_fatal(exc)
