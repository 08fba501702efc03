"""Cosmos DB accounts: `properties.ipRules`, an unnamed list replaced whole by a long-running PATCH.

An empty list means every address is allowed, so a write that would empty a list, or start one, is
refused here as well as by the planner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allowlist.jsonshape import json_object
from allowlist.targets.addresslist import AddressList, get_with_etag
from allowlist.targets.base import Backend, Capabilities, TargetWriteError

ARM_TYPE = "Microsoft.DocumentDB/databaseAccounts"


class CosmosAccount(AddressList):
    entry_key = "ipAddressOrRange"

    def _client(self) -> Any:
        return self._clients.client("cosmosdb", self.ref.subscription_id).database_accounts

    def _get(self) -> tuple[Mapping[str, Any], str | None]:
        return get_with_etag(self._client().get, self.ref.resource_group, self.ref.name)

    def _items(self, account: Mapping[str, Any]) -> list[Any]:
        items = json_object(account.get("properties")).get("ipRules")
        return list(items) if isinstance(items, list) else []

    def _patch(self, account: Mapping[str, Any], entries: list[str], tags: dict[str, str], etag: str | None) -> None:
        body = {"properties": {"ipRules": [{"ipAddressOrRange": e} for e in entries]}, "tags": tags}
        headers = {"If-Match": etag} if etag else {}
        poller = self._client().begin_update(self.ref.resource_group, self.ref.name, body, headers=headers)
        limit = self._clients.settings.operation_timeout
        poller.result(timeout=limit)
        if not poller.done():
            raise TargetWriteError(f"the update did not finish within {limit:g} s; run plan again")


BACKEND = Backend(
    kind="cosmosdb",
    arm_type=ARM_TYPE,
    capabilities=Capabilities(
        label="Cosmos DB account",
        named_ranges=False,
        ipv6=False,
        default_rule_limit=1000,
        long_running_writes=True,
        empty_list_means_open=True,
        service_endpoint="Microsoft.AzureCosmosDB",
    ),
    client=("azure.mgmt.cosmosdb", "CosmosDBManagementClient"),
    api_version="2024-11-15",
    opener=CosmosAccount,
    read_actions=(f"{ARM_TYPE}/read",),
    # Azure has no narrower action for an account's IP rules than account write.
    write_actions=(f"{ARM_TYPE}/write",),
    iac={
        "terraform": "azurerm_cosmosdb_account.ip_range_filter",
        "terraform_local": "allowlist_cosmosdb_ip_range_filter",
    },
)
