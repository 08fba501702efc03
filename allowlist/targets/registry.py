"""Every supported back end, from its own module; resource IDs are parsed into targets here."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from allowlist.errors import ConfigError
from allowlist.model import TargetRef
from allowlist.targets import cosmosdb, keyvault, mysql, postgresql, redis, sql, storage, webapp
from allowlist.targets.base import Backend, Capabilities, Target

if TYPE_CHECKING:
    from allowlist.azure import ArmClients

MODULES = (sql, postgresql, mysql, cosmosdb, storage, redis, keyvault, webapp)  # adding a back end: one more here
BACKENDS: dict[str, Backend] = {m.BACKEND.kind: m.BACKEND for m in MODULES}
_BY_TYPE = {b.arm_type.lower(): b for b in BACKENDS.values()}

_TARGET_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"(?P<type>Microsoft\.[A-Za-z]+/[A-Za-z]+)/(?P<name>[^/]+)(?:/slots/(?P<slot>[^/]+))?/?$",
    re.IGNORECASE,
)


def capabilities(kind: str) -> Capabilities:
    return BACKENDS[kind].capabilities


def parse_target(resource_id: str) -> TargetRef:
    m = _TARGET_ID.match(resource_id.strip())
    if m is None:
        raise ConfigError(
            f"'{resource_id}' is not a resource ID of the form "
            "/subscriptions/SUB/resourceGroups/GROUP/providers/Microsoft.Sql/servers/NAME"
        )
    backend = _BY_TYPE.get(m["type"].lower())
    if backend is None:
        supported = ", ".join(b.arm_type for b in BACKENDS.values())
        raise ConfigError(f"'{resource_id}': {m['type']} is not a supported target (supported: {supported})")
    name = m["name"]
    if m["slot"]:  # a deployment slot has access restrictions of its own; nothing else has slots
        if backend.kind != "webapp":
            raise ConfigError(f"'{resource_id}': only App Service apps have deployment slots")
        name = f"{name}/slots/{m['slot']}"
    return TargetRef(m["sub"].lower(), m["rg"], backend.arm_type, name, backend.kind)


def open_target(ref: TargetRef, clients: ArmClients) -> Target:
    backend = BACKENDS[ref.kind]
    return backend.opener(ref, clients, backend.capabilities)
