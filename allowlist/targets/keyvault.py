"""Key Vault: `properties.networkAcls.ipRules` ([{value}]), an unnamed list replaced whole by PATCH with
`If-Match`; ownership through the same tag ledger as Cosmos DB and Storage. Read and written as raw ARM
JSON through the raw pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allowlist.jsonshape import json_object
from allowlist.targets.addresslist import AddressList
from allowlist.targets.base import Backend, Capabilities, TargetWriteError

ARM_TYPE = "Microsoft.KeyVault/vaults"
API_VERSION = "2024-11-01"


class KeyVault(AddressList):
    entry_key = "value"

    def _send(self, method: str, body: Mapping[str, Any] | None = None, etag: str | None = None) -> Any:
        return self._clients.send(method, f"{self.ref.id}?api-version={API_VERSION}", body, etag)

    def _get(self) -> tuple[Mapping[str, Any], str | None]:
        response = self._send("GET")
        body = response.json()
        if not isinstance(body, Mapping):
            raise TargetWriteError("the vault's answer is not a JSON object")
        return body, response.headers.get("ETag")

    def _acls(self, vault: Mapping[str, Any]) -> Mapping[str, Any]:
        return json_object(json_object(vault.get("properties")).get("networkAcls"))

    def _items(self, vault: Mapping[str, Any]) -> list[Any]:
        items = self._acls(vault).get("ipRules")
        return list(items) if isinstance(items, list) else []

    def _notes(self, vault: Mapping[str, Any]) -> tuple[str, ...]:
        if str(self._acls(vault).get("defaultAction", "")).lower() == "allow":
            return ("its networkAcls.defaultAction is Allow: IP rules have no effect until it is Deny",)
        return ()

    def _patch(self, vault: Mapping[str, Any], entries: list[str], tags: dict[str, str], etag: str | None) -> None:
        acls = dict(self._acls(vault))  # bypass, defaultAction, virtual network rules ... as they are
        acls["ipRules"] = [{"value": e} for e in entries]
        acls.setdefault("defaultAction", "Deny")
        self._send("PATCH", {"properties": {"networkAcls": acls}, "tags": tags}, etag)


BACKEND = Backend(
    kind="keyvault",
    arm_type=ARM_TYPE,
    capabilities=Capabilities(
        label="Key Vault",
        named_ranges=False,
        ipv6=False,
        default_rule_limit=1000,
        long_running_writes=False,
        service_endpoint="Microsoft.KeyVault",
    ),
    client=("azure.mgmt.resource.subscriptions", "SubscriptionClient"),  # raw requests, see KeyVault._send
    api_version=API_VERSION,
    opener=KeyVault,
    read_actions=(f"{ARM_TYPE}/read",),
    write_actions=(f"{ARM_TYPE}/write",),  # no narrower action exists for a vault's IP rules
    iac={"terraform": "azurerm_key_vault.network_acls.ip_rules", "terraform_local": "allowlist_key_vault_ip_rules"},
)
