"""What every back end offers the planner and apply: its capabilities, what it holds now, and writes.

Two shapes exist. Named ranges (SQL, PostgreSQL, MySQL): rules with names and start/end addresses,
written one by one. Address lists (Cosmos DB, Storage): one unnamed list of addresses and CIDRs,
replaced whole; allowlist proves which entries it added with a ledger kept in the account's tags.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from allowlist.model import ExistingRule, IpRange, TargetRef

if TYPE_CHECKING:
    from allowlist.azure import ArmClients


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """A plan checks every rule name it writes: re.match would look its pattern up in re's cache each time."""
    return re.compile(pattern)


@dataclass(frozen=True)
class Capabilities:
    label: str  # for messages: "Azure SQL server"
    named_ranges: bool  # False: an unnamed list of addresses / CIDRs
    ipv6: bool
    default_rule_limit: int
    long_running_writes: bool
    name_pattern: str = r"^[^<>*%&:;\\/?]{1,128}(?<!\.)$"  # the service's rule-name rule
    name_dots_as: str = "."  # services that refuse dots in names get another separator
    name_dash_as: str = "-"  # ... and those that refuse dashes (Redis), in the prefix and between the ends
    protected_names: tuple[str, ...] = ()  # rules that are never ours whatever their name
    empty_list_means_open: bool = False  # Cosmos DB: no IP rules = every address allowed
    single_address_max_prefix: int = 32  # Storage: /31 and /32 must be written as bare addresses
    same_region_bypasses_rules: bool = False  # Storage: IP rules do not apply within its region
    limit_error_codes: tuple[str, ...] = ()  # ARM error codes meaning "the firewall is full"
    serial_writes: bool = False  # one write at a time (each rewrites one whole list)
    service_endpoint: str = ""  # the VNet service endpoint that bypasses its IP rules, if it has one

    def valid_name(self, name: str) -> bool:
        return _compiled(self.name_pattern).match(name) is not None


@dataclass(frozen=True)
class Firewall:
    """What a target holds now, as one read saw it."""

    rules: tuple[ExistingRule, ...]  # named rules, or list entries named by themselves
    owned: frozenset[str] | None = None  # address lists: the entries the ledger proves allowlist added
    location: str = ""
    notes: tuple[str, ...] = ()  # facts worth a warning, e.g. a Storage account that allows all
    tag_count: int = 0  # address lists: the account's tags that are not allowlist's ledger
    opaque: tuple[str, ...] = ()  # rules or entries that are not IPv4 ranges: kept, counted, never touched
    etag: str | None = None  # address lists: the version read, for If-Match
    entries: tuple[str, ...] = ()  # access restrictions: every entry as read (JSON), for renders of the whole list

    @property
    def count(self) -> int:
        return len(self.rules) + len(self.opaque)


def with_opaque(rules: list[ExistingRule], opaque: list[str], what: str, **extra: Any) -> Firewall:
    """A firewall read rule by rule; `what` says why each opaque one is not a range (`{}` is its name)."""
    notes = tuple(f"{what.format(name)}: left alone, counted toward the limit" for name in opaque)
    return Firewall(tuple(rules), notes=notes, opaque=tuple(opaque), **extra)


class TargetWriteError(Exception):
    """A write the back end refused; `limit_hit` when it refused because the rule limit is reached."""

    def __init__(self, message: str, limit_hit: bool = False) -> None:
        super().__init__(message)
        self.limit_hit = limit_hit


class Target(Protocol):
    ref: TargetRef
    capabilities: Capabilities

    def read(self, prefix: str) -> Firewall: ...


class RuleWrite(Protocol):
    """One planned write of a named rule (planner.Change): what a target needs of it."""

    @property
    def action(self) -> str: ...  # "create" or "delete"

    @property
    def name(self) -> str: ...

    @property
    def range(self) -> IpRange: ...


class RuleTarget(Target, Protocol):
    """Named ranges: each rule its own write."""

    def write_all(self, writes: Sequence[RuleWrite], width: int, each: Callable[[], None]) -> list[Exception | None]:
        """Make `writes`, up to `width` at once where the service allows it; in their order, None for each
        that was made, else why not (TargetWriteError for a refusal). `each` is called as each one ends."""
        ...


def one_by_one(
    writes: Sequence[RuleWrite], write_one: Callable[[RuleWrite], None], each: Callable[[], None]
) -> list[Exception | None]:
    """write_all for services that take one write at a time."""
    out: list[Exception | None] = []
    for write in writes:
        try:
            write_one(write)
            out.append(None)
        except Exception as exc:  # this write failed; the caller decides what that means for the others
            out.append(exc)
        finally:
            each()
    return out


def rest_writes(
    clients: ArmClients,
    calls: Sequence[tuple[str, str, Any]],
    width: int,
    each: Callable[[], None],
    refusal: Callable[[Any], TargetWriteError],
) -> list[Exception | None]:
    """write_all for rules that are independent REST resources: sent together (ArmClients.send_all); an
    error status becomes the target's own refusal (`refusal` of the HttpResponseError)."""
    from azure.core.exceptions import HttpResponseError  # loaded by ArmClients before any request

    out: list[Exception | None] = []
    for error in clients.send_all(calls, width, each):
        if isinstance(error, HttpResponseError):
            refused = refusal(error)
            refused.__cause__ = error
            error = refused
        out.append(error)
    return out


class ListTarget(Target, Protocol):
    """An address list, rewritten whole from a fresh read, with its ownership ledger in one write."""

    def replace_entries(self, prefix: str, add: Sequence[str], remove: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class Backend:
    """Everything specific to one kind of back end, in one value: the registry, the template context
    and the role definitions are built from these."""

    kind: str  # "sql": the key used in plans and templates
    arm_type: str  # canonical spelling, "Microsoft.Sql/servers"
    capabilities: Capabilities
    client: tuple[str, str]  # the SDK's module and client class, imported on first use
    api_version: str  # what rendered templates deploy with
    opener: Callable[[TargetRef, ArmClients, Capabilities], Target]
    read_actions: tuple[str, ...]  # RBAC actions a plan needs
    write_actions: tuple[str, ...]  # RBAC actions an apply needs on top
    iac: dict[str, str] = field(default_factory=dict)  # resource names the templates need, by format
