"""Ownership for address lists that have no names (Cosmos DB, Storage).

allowlist records every entry it added in the account's own tags, `PREFIXowned-0`, `PREFIXowned-1` ...,
as plain space-separated text (readable in the portal), and writes list and tags in one PATCH, so
they can never disagree. An entry is allowlist's only if the ledger names it and the list still holds
it; everything else, including an entry someone else added first, is never removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

TAG_VALUE_MAX = 256
TAGS_MAX = 50


def ledger_tag_prefix(prefix: str) -> str:
    return f"{prefix}owned-"


def is_ledger_tag(prefix: str, name: str) -> bool:
    return name.lower().startswith(ledger_tag_prefix(prefix).lower())


def read_ledger(prefix: str, tags: Mapping[str, str] | None) -> frozenset[str]:
    return frozenset(
        entry.lower() for name, value in (tags or {}).items() if is_ledger_tag(prefix, name) for entry in value.split()
    )


def ledger_tags(prefix: str, owned: Iterable[str]) -> dict[str, str]:
    """The ledger as tags, each value at most 256 characters, entries sorted so output is stable."""
    chunks: list[list[str]] = [[]]
    for entry in sorted({e.lower() for e in owned}):
        if len(" ".join([*chunks[-1], entry])) > TAG_VALUE_MAX:
            chunks.append([])
        chunks[-1].append(entry)
    return {f"{ledger_tag_prefix(prefix)}{i}": " ".join(chunk) for i, chunk in enumerate(chunks) if chunk}


def with_ledger(prefix: str, tags: Mapping[str, str] | None, owned: Iterable[str]) -> dict[str, str]:
    """The account's other tags untouched, the ledger replaced."""
    kept = {k: v for k, v in (tags or {}).items() if not is_ledger_tag(prefix, k)}
    return {**kept, **ledger_tags(prefix, owned)}
