"""What every back end offers the planner and apply: its capabilities, and list / put / delete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from allowlist.model import ExistingRule, IpRange, TargetRef


@dataclass(frozen=True)
class Capabilities:
    named_ranges: bool  # rules are named start/end ranges (SQL, PostgreSQL, MySQL)
    ipv6: bool
    default_rule_limit: int
    long_running_writes: bool
    max_name_length: int
    forbidden_name_chars: str
    protected_names: tuple[str, ...] = ()  # rules that are never ours whatever their name


class TargetWriteError(Exception):
    """A write the back end refused; `limit_hit` when it refused because the rule limit is reached."""

    def __init__(self, message: str, limit_hit: bool = False) -> None:
        super().__init__(message)
        self.limit_hit = limit_hit


class Target(Protocol):
    ref: TargetRef
    capabilities: Capabilities

    def list_rules(self) -> list[ExistingRule]: ...

    def put_rule(self, name: str, rule_range: IpRange) -> None: ...

    def delete_rule(self, name: str) -> None: ...
