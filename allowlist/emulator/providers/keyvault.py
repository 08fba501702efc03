"""Key Vault (`Microsoft.KeyVault/vaults`): GET and PATCH of a vault, its `networkAcls.ipRules` and tags
replaced by the PATCH, an ETag on every answer and 412 on a stale `If-Match`, in the shapes of the
official examples."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, route
from allowlist.emulator.providers.accounts import _answer, _entries, _replace, _tags, busy, check_if_match
from allowlist.emulator.providers.common import find_resource
from allowlist.emulator.state import KEYVAULT, IpListAccount, State


def vault_body(vault: IpListAccount) -> JSON:
    return {
        "id": vault.id, "name": vault.name, "type": KEYVAULT, "location": vault.location, "tags": dict(vault.tags),
        "properties": {
            "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "sku": {"family": "A", "name": "standard"},
            "accessPolicies": [], "enabledForDeployment": False, "enabledForDiskEncryption": False,
            "enabledForTemplateDeployment": False, "vaultUri": f"https://{vault.name}.vault.azure.net",
            "provisioningState": "Succeeded", "publicNetworkAccess": "Enabled",
            "networkAcls": {"bypass": "AzureServices", "defaultAction": vault.default_action,
                            "ipRules": [{"value": e} for e in vault.ip_rules], "virtualNetworkRules": []},
        },
    }  # fmt: skip


def routes(fail_write: Callable[[Request], bool]) -> list[Route]:
    path = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/" + KEYVAULT + "/{name}"

    def get_vault(request: Request, state: State) -> Response:
        with state.lock:
            vault = find_resource(request, state, state.accounts, KEYVAULT, "name")
            return _answer(vault_body(vault), vault)

    def patch_vault(request: Request, state: State) -> Response:
        payload = request.json()
        acls = (payload.get("properties") or {}).get("networkAcls") if isinstance(payload, dict) else None
        entries = _entries(acls["ipRules"], "value", "networkAcls.ipRules") if acls and "ipRules" in acls else None
        for entry in entries or []:
            try:
                ipaddress.IPv4Network(entry, strict=False)
            except ValueError as exc:
                raise ArmError(400, "BadRequest", f"'{entry}' is not a valid IPv4 address or range.") from exc
        if entries is not None and len(entries) > state.rule_limit(KEYVAULT):
            raise ArmError(400, "BadRequest", f"A vault supports at most {state.rule_limit(KEYVAULT)} IP rules.")
        tags = _tags(payload)
        with state.lock:
            vault = find_resource(request, state, state.accounts, KEYVAULT, "name")
            if fail_write(request):
                raise busy(vault)
            check_if_match(request, vault)
            if acls and isinstance(acls.get("defaultAction"), str):
                vault.default_action = acls["defaultAction"]
            _replace(state, vault, entries, tags)
            return _answer(vault_body(vault), vault)

    return [
        route("GET", path, get_vault, f"{KEYVAULT}/read"),
        route("PATCH", path, patch_vault, f"{KEYVAULT}/write"),
    ]
