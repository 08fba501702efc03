"""From a TargetRef to the module that speaks to that kind of back end."""

from __future__ import annotations

from allowlist.azure import ArmClients
from allowlist.model import TargetRef
from allowlist.targets.base import Capabilities, Target
from allowlist.targets.sql import SQL, SqlTarget

CAPABILITIES: dict[str, Capabilities] = {"sql": SQL}


def open_target(ref: TargetRef, clients: ArmClients) -> Target:
    if ref.kind == "sql":
        return SqlTarget(ref, clients)
    raise ValueError(f"no back end for target kind '{ref.kind}'")  # TargetRef.parse admits only known kinds
