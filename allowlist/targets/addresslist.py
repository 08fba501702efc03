"""Accounts with one unnamed IP list (Cosmos DB, Storage), replaced whole by PATCH: what they share.

Every write starts from a fresh read of the account (read, merge, write), keeps every entry and field
allowlist did not add, removes only entries the ledger proves it added, and updates the ledger in the
same PATCH. The PATCH carries `If-Match` with the ETag read, so an entry a person adds between the read
and the write is never lost: the service answers 412, and allowlist reads, merges and writes again.
After the write it reads the list back and checks that every entry it did not remove is still there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from allowlist.armerrors import describe

if TYPE_CHECKING:
    from allowlist.azure import ArmClients

from allowlist.model import ExistingRule, IpRange, TargetRef
from allowlist.targets.base import Capabilities, Firewall, TargetWriteError
from allowlist.targets.ledger import is_ledger_tag, read_ledger, with_ledger

MERGE_ATTEMPTS = 4  # reads and writes again after a 412, at most this many times


def entry_range(entry: str) -> IpRange | None:
    """An IP address or CIDR as a range; None for anything else (kept, never touched)."""
    try:
        network = ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None
    return IpRange(int(network[0]), int(network[-1]), network.version)


class AddressList:
    entry_key: str  # the field naming the address in one list item

    def __init__(self, ref: TargetRef, clients: ArmClients, capabilities: Capabilities) -> None:
        self.ref = ref
        self.capabilities = capabilities
        self._clients = clients

    # What each service differs in.
    def _get(self) -> tuple[Mapping[str, Any], str | None]:
        """The account as JSON, and its ETag."""
        raise NotImplementedError

    def _items(self, account: Mapping[str, Any]) -> list[Any]:
        raise NotImplementedError

    def _patch(self, account: Mapping[str, Any], entries: list[str], tags: dict[str, str], etag: str | None) -> None:
        raise NotImplementedError

    def _notes(self, account: Mapping[str, Any]) -> tuple[str, ...]:
        return ()

    def _entries(self, account: Mapping[str, Any]) -> list[str]:
        """Every entry as text; an item of any other shape is kept as it is and never matched."""
        return [
            str(item.get(self.entry_key)) if isinstance(item, Mapping) else repr(item) for item in self._items(account)
        ]

    @staticmethod
    def _tags(account: Mapping[str, Any]) -> dict[str, str]:
        tags = account.get("tags")
        return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {}

    def read(self, prefix: str) -> Firewall:
        account, etag = self._get()
        entries = self._entries(account)
        tags = self._tags(account)
        ranges = [(e, entry_range(e)) for e in entries]
        return Firewall(
            rules=tuple(ExistingRule(e, r) for e, r in ranges if r is not None),
            owned=read_ledger(prefix, tags) & {e.lower() for e in entries},
            location=str(account.get("location", "")),
            notes=self._notes(account),
            tag_count=sum(1 for name in tags if not is_ledger_tag(prefix, name)),
            opaque=tuple(e for e, r in ranges if r is None),
            etag=etag,
        )

    def replace_entries(self, prefix: str, add: Sequence[str], remove: Sequence[str]) -> None:
        from azure.core.exceptions import HttpResponseError

        for attempt in range(1, MERGE_ATTEMPTS + 1):
            try:
                kept = self._merge_and_write(prefix, add, remove)
            except HttpResponseError as exc:
                if exc.status_code == 412 and attempt < MERGE_ATTEMPTS:
                    continue  # someone wrote between our read and our write: read and merge again
                raise TargetWriteError(describe(exc)) from exc
            self._verify(kept, add)
            return

    def _merge_and_write(self, prefix: str, add: Sequence[str], remove: Sequence[str]) -> set[str]:
        account, etag = self._get()
        entries = self._entries(account)
        present = {e.lower() for e in entries}
        tags = self._tags(account)
        owned = read_ledger(prefix, tags) & present
        dropping = {r.lower() for r in remove} & owned  # only what the ledger proves is ours
        new = [e for e in entries if e.lower() not in dropping]
        claimed = [a for a in add if a.lower() not in present]  # already there: someone else's, or ours
        new += claimed
        if self.capabilities.empty_list_means_open and bool(entries) != bool(new):
            raise TargetWriteError(
                f"refused: {self.ref.name} would go from {len(entries)} to {len(new)} IP rules, and an empty "
                "list allows every address"
            )
        self._patch(account, new, with_ledger(prefix, tags, (owned - dropping) | {c.lower() for c in claimed}), etag)
        return {e.lower() for e in entries} - dropping

    def _verify(self, kept: set[str], add: Sequence[str]) -> None:
        """Read back: every entry that was there and not removed, and every one added, must be there."""
        account, _ = self._get()
        now = {e.lower() for e in self._entries(account)}
        missing = sorted((kept | {a.lower() for a in add}) - now)
        if missing:
            raise TargetWriteError(f"after the write the list lacks {', '.join(missing)}; run again")


def get_with_etag(operation: Any, *args: Any) -> tuple[Mapping[str, Any], str | None]:
    """Call an SDK GET and keep the response's ETag header, which the model drops."""
    model, etag = operation(
        *args, cls=lambda response, model, _headers: (model, response.http_response.headers.get("ETag"))
    )
    return model, etag
