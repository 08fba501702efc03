"""Reading ARM's JSON defensively: a field that should hold an object may hold anything, or be missing."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})  # shared, so it must not be changed


def json_object(value: Any) -> Mapping[str, Any]:
    """The value if it is a JSON object, else an empty one, so `.get` reads a missing field as None.
    Discovery calls it several times per app: orjson's dicts are told apart without the ABC check."""
    return value if type(value) is dict or isinstance(value, Mapping) else _EMPTY
