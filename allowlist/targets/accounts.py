"""Cosmos DB and Storage accounts: one unnamed IP list each, replaced whole by PATCH.

Every write starts from a fresh read of the account (read, merge, write), keeps every entry and field
allowlist did not add, removes only entries the ledger proves it added, and updates the ledger in the
same PATCH. Cosmos DB reads an empty list as "every address allowed", so a write that would empty a
list, or start one, is refused here as well as by the planner.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from allowlist.azure import ArmClients, describe
from allowlist.model import ExistingRule, IpRange, TargetRef
from allowlist.targets.base import Capabilities, Firewall, TargetWriteError
from allowlist.targets.ledger import is_ledger_tag, read_ledger, with_ledger


def entry_range(entry: str) -> IpRange | None:
    """An IPv4 address or CIDR as a range; None for anything else (kept, never touched)."""
    try:
        network = ipaddress.IPv4Network(entry.strip(), strict=False)
    except ValueError:
        return None
    return IpRange(int(network[0]), int(network[-1]))


class _AddressList:
    entry_key: str  # the field naming the address in one list item

    def __init__(self, ref: TargetRef, clients: ArmClients, capabilities: Capabilities) -> None:
        self.ref = ref
        self.capabilities = capabilities
        self._clients = clients

    # What each service differs in.
    def _get(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def _items(self, account: Mapping[str, Any]) -> list[Any]:
        raise NotImplementedError

    def _patch(self, account: Mapping[str, Any], entries: list[str], tags: dict[str, str]) -> None:
        raise NotImplementedError

    def _notes(self, account: Mapping[str, Any]) -> tuple[str, ...]:
        return ()

    def _entries(self, account: Mapping[str, Any]) -> list[str]:
        return [str(item[self.entry_key]) for item in self._items(account)]

    def read(self, prefix: str) -> Firewall:
        account = self._get()
        entries = self._entries(account)
        tags = account.get("tags") or {}
        return Firewall(
            rules=tuple(ExistingRule(e, r) for e in entries if (r := entry_range(e)) is not None),
            owned=read_ledger(prefix, tags) & {e.lower() for e in entries},
            location=str(account.get("location", "")),
            notes=self._notes(account),
            tag_count=sum(1 for name in tags if not is_ledger_tag(prefix, name)),
        )

    def replace_entries(self, prefix: str, add: Sequence[str], remove: Sequence[str]) -> None:
        from azure.core.exceptions import HttpResponseError

        try:
            account = self._get()
            entries = self._entries(account)
            present = {e.lower() for e in entries}
            tags = dict(account.get("tags") or {})
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
            self._patch(account, new, with_ledger(prefix, tags, (owned - dropping) | {c.lower() for c in claimed}))
        except HttpResponseError as exc:
            raise TargetWriteError(describe(exc)) from exc


class CosmosTarget(_AddressList):
    entry_key = "ipAddressOrRange"

    def _client(self) -> Any:
        return self._clients.client("cosmosdb", self.ref.subscription_id).database_accounts

    def _get(self) -> Mapping[str, Any]:
        return self._client().get(self.ref.resource_group, self.ref.name)  # type: ignore[no-any-return]

    def _items(self, account: Mapping[str, Any]) -> list[Any]:
        return list(account["properties"].get("ipRules") or [])

    def _patch(self, account: Mapping[str, Any], entries: list[str], tags: dict[str, str]) -> None:
        body = {"properties": {"ipRules": [{"ipAddressOrRange": e} for e in entries]}, "tags": tags}
        poller = self._client().begin_update(self.ref.resource_group, self.ref.name, body)
        limit = self._clients.settings.operation_timeout
        poller.result(timeout=limit)
        if not poller.done():
            raise TargetWriteError(f"the update did not finish within {limit:g} s; run plan again")


class StorageTarget(_AddressList):
    entry_key = "value"

    def _client(self) -> Any:
        return self._clients.client("storage", self.ref.subscription_id).storage_accounts

    def _get(self) -> Mapping[str, Any]:
        return self._client().get_properties(self.ref.resource_group, self.ref.name)  # type: ignore[no-any-return]

    def _acls(self, account: Mapping[str, Any]) -> Mapping[str, Any]:
        return account["properties"].get("networkAcls") or {}

    def _items(self, account: Mapping[str, Any]) -> list[Any]:
        return list(self._acls(account).get("ipRules") or [])

    def _notes(self, account: Mapping[str, Any]) -> tuple[str, ...]:
        if str(self._acls(account).get("defaultAction", "")).lower() == "allow":
            return ("its networkAcls.defaultAction is Allow: IP rules have no effect until it is Deny",)
        return ()

    def _patch(self, account: Mapping[str, Any], entries: list[str], tags: dict[str, str]) -> None:
        acls = dict(self._acls(account))  # bypass, defaultAction, virtual network rules ... as they are
        acls["ipRules"] = [{"value": e, "action": "Allow"} for e in entries]
        acls.setdefault("defaultAction", "Deny")
        body = {"properties": {"networkAcls": acls}, "tags": tags}
        self._client().update(self.ref.resource_group, self.ref.name, body)
