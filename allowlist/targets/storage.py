"""Storage accounts: `properties.networkAcls.ipRules`, an unnamed list replaced whole by PATCH.

The service refuses /31 and /32 CIDRs (single addresses are written bare) and private ranges, and its
IP rules do not apply to requests from the account's own region.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allowlist.jsonshape import json_object
from allowlist.targets.addresslist import AddressList, get_with_etag
from allowlist.targets.base import Backend, Capabilities

ARM_TYPE = "Microsoft.Storage/storageAccounts"


class StorageAccount(AddressList):
    entry_key = "value"

    def _client(self) -> Any:
        return self._clients.client("storage", self.ref.subscription_id).storage_accounts

    def _get(self) -> tuple[Mapping[str, Any], str | None]:
        return get_with_etag(self._client().get_properties, self.ref.resource_group, self.ref.name)

    def _acls(self, account: Mapping[str, Any]) -> Mapping[str, Any]:
        return json_object(json_object(account.get("properties")).get("networkAcls"))

    def _items(self, account: Mapping[str, Any]) -> list[Any]:
        acls = self._acls(account)
        return [item for key in ("ipRules", "ipv6Rules") if isinstance(items := acls.get(key), list) for item in items]

    def _notes(self, account: Mapping[str, Any]) -> tuple[str, ...]:
        if str(self._acls(account).get("defaultAction", "")).lower() == "allow":
            return ("its networkAcls.defaultAction is Allow: IP rules have no effect until it is Deny",)
        return ()

    def _patch(self, account: Mapping[str, Any], entries: list[str], tags: dict[str, str], etag: str | None) -> None:
        acls = dict(self._acls(account))  # bypass, defaultAction, virtual network rules ... as they are
        v6 = [e for e in entries if ":" in e]
        acls["ipRules"] = [{"value": e, "action": "Allow"} for e in entries if ":" not in e]
        if v6 or "ipv6Rules" in acls:
            acls["ipv6Rules"] = [{"value": e, "action": "Allow"} for e in v6]
        acls.setdefault("defaultAction", "Deny")
        body = {"properties": {"networkAcls": acls}, "tags": tags}
        headers = {"If-Match": etag} if etag else {}
        self._client().update(self.ref.resource_group, self.ref.name, body, headers=headers)


BACKEND = Backend(
    kind="storage",
    arm_type=ARM_TYPE,
    capabilities=Capabilities(
        label="Storage account",
        named_ranges=False,
        ipv6=True,  # networkAcls.ipv6Rules
        default_rule_limit=400,
        long_running_writes=False,
        single_address_max_prefix=30,
        same_region_bypasses_rules=True,
        service_endpoint="Microsoft.Storage",
    ),
    client=("azure.mgmt.storage", "StorageManagementClient"),
    api_version="2023-05-01",
    opener=StorageAccount,
    read_actions=(f"{ARM_TYPE}/read",),
    write_actions=(f"{ARM_TYPE}/write",),
    iac={
        "terraform": "azurerm_storage_account_network_rules.ip_rules",
        "terraform_local": "allowlist_storage_ip_rules",
    },
)
