"""Cosmos DB and Storage accounts: one unnamed IP list each, replaced whole by PATCH.

Cosmos DB `properties.ipRules` ([{ipAddressOrRange}]); its PATCH answers 200, as the official example.
Storage `properties.networkAcls.ipRules` ([{value, action}]); its PATCH answers 200 at once and refuses
/31 and /32 CIDRs (single addresses are written bare) and private ranges, as the service does.
Tags ride along in the same PATCH, so an account's list and its tags always change together.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from allowlist.emulator.http import JSON, ArmError, Request, Response, Route, route
from allowlist.emulator.providers.common import find_resource
from allowlist.emulator.state import COSMOSDB, STORAGE, IpListAccount, State, entry_rule


def cosmos_body(account: IpListAccount) -> JSON:
    host = f"https://{account.name}.documents.azure.com:443/"
    return {
        "id": account.id,
        "name": account.name,
        "type": COSMOSDB,
        "kind": "GlobalDocumentDB",
        "location": account.location,
        "tags": dict(account.tags),
        "identity": {"type": "None"},
        "properties": {
            "provisioningState": "Succeeded",
            "documentEndpoint": host,
            "databaseAccountOfferType": "Standard",
            "ipRules": [{"ipAddressOrRange": entry} for entry in account.ip_rules],
            "isVirtualNetworkFilterEnabled": False,
            "virtualNetworkRules": [],
            "networkAclBypass": "None",
            "networkAclBypassResourceIds": [],
            "publicNetworkAccess": "Enabled",
            "minimalTlsVersion": "Tls12",
        },
    }


def storage_body(account: IpListAccount) -> JSON:
    body: JSON = {
        "id": account.id,
        "name": account.name,
        "type": STORAGE,
        "kind": "StorageV2",
        "location": account.location,
        "sku": {"name": "Standard_LRS", "tier": "Standard"},
        "tags": dict(account.tags),
        "properties": {
            "provisioningState": "Succeeded",
            "primaryLocation": account.location,
            "statusOfPrimary": "available",
            "supportsHttpsTrafficOnly": True,
            "networkAcls": {
                "bypass": "AzureServices",
                "defaultAction": account.default_action,
                "ipRules": [{"value": entry, "action": "Allow"} for entry in account.ip_rules if ":" not in entry],
                "virtualNetworkRules": [],
                "resourceAccessRules": [],
            },
        },
    }
    v6 = [{"value": entry, "action": "Allow"} for entry in account.ip_rules if ":" in entry]
    if v6:  # networkAcls.ipv6Rules, shown when the account holds IPv6 rules
        body["properties"]["networkAcls"]["ipv6Rules"] = v6
    return body


def _entries(raw: Any, key: str, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(r, dict) and isinstance(r.get(key), str) for r in raw):
        raise ArmError(400, "InvalidRequestContent", f"'{where}' must be a list of objects with '{key}'.")
    return [r[key] for r in raw]


# What Storage refuses: RFC 1918, and the loopback, link-local, shared and "this network" blocks.
PRIVATE = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
    )
)


def _check_storage_entry(entry: str) -> None:
    if ":" in entry:
        try:
            v6 = ipaddress.IPv6Network(entry, strict=True)
        except ValueError as exc:
            raise ArmError(
                400, "NetworkAclsValidationFailure", f"'{entry}' is not a valid IPv6 address or range."
            ) from exc
        if not v6.is_global:
            raise ArmError(400, "NetworkAclsValidationFailure", f"'{entry}': private address ranges are not allowed.")
        return
    try:
        network = ipaddress.IPv4Network(entry, strict=True)
    except ValueError as exc:
        raise ArmError(400, "NetworkAclsValidationFailure", f"'{entry}' is not a valid IPv4 address or range.") from exc
    if "/" in entry and network.prefixlen > 30:
        raise ArmError(
            400,
            "NetworkAclsValidationFailure",
            f"'{entry}': /31 and /32 ranges are not supported; use single addresses.",
        )
    if any(network.overlaps(private) for private in PRIVATE):
        raise ArmError(400, "NetworkAclsValidationFailure", f"'{entry}': private address ranges are not allowed.")


def _check_cosmos_entry(entry: str) -> None:
    try:
        ipaddress.IPv4Network(entry, strict=False)  # the official example writes 110.12.240.0/12
    except ValueError as exc:
        raise ArmError(400, "BadRequest", f"Invalid IP address or range '{entry}' in ipRules.") from exc


def _tags(payload: JSON) -> dict[str, str] | None:
    tags = payload.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) and len(v) <= 256 for v in tags.values()):
        raise ArmError(400, "InvalidTag", "Tag values must be strings of at most 256 characters.")
    if len(tags) > 50:
        raise ArmError(400, "InvalidTag", "A resource can have at most 50 tags.")
    return dict(tags)


def _replace(state: State, account: IpListAccount, entries: list[str] | None, tags: dict[str, str] | None) -> None:
    """Apply a PATCH: record each entry that came or went, so the timeline replays the list."""
    if entries is not None:
        state.record_changes(account.id, account.as_rules(), {e.lower(): entry_rule(e) for e in entries})
        account.ip_rules = list(dict.fromkeys(entries))
    if tags is not None:
        account.tags = tags
    account.version += 1


def check_if_match(request: Request, account: IpListAccount) -> None:
    """A write that names the version it read is refused when the account changed since: ARM's 412."""
    wanted = request.headers.get("if-match")
    if wanted is not None and wanted.strip() not in ("*", account.etag):
        raise ArmError(
            412,
            "PreconditionFailed",
            f"The resource '{account.name}' was changed since it was read (If-Match {wanted} does not match "
            f"the current ETag {account.etag}).",
        )


def _answer(body: JSON, account: IpListAccount) -> Response:
    return Response(200, body, {"ETag": account.etag})


def busy(account: IpListAccount) -> ArmError:
    """How these services refuse a write while another is running: the write changes nothing."""
    return ArmError(
        409, "Conflict", f"There is already an operation in progress on '{account.name}'. Retry after it finishes."
    )


def routes(fail_write: Callable[[Request], bool]) -> list[Route]:
    cosmos = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/" + COSMOSDB + "/{name}"
    storage = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/" + STORAGE + "/{name}"

    def get_cosmos(request: Request, state: State) -> Response:
        with state.lock:
            account = find_resource(request, state, state.accounts, COSMOSDB, "name")
            return _answer(cosmos_body(account), account)

    def patch_cosmos(request: Request, state: State) -> Response:
        payload = request.json()
        with state.lock:
            account = find_resource(request, state, state.accounts, COSMOSDB, "name")
        props = payload.get("properties") or {}
        entries = _entries(props["ipRules"], "ipAddressOrRange", "ipRules") if "ipRules" in props else None
        for entry in entries or []:
            _check_cosmos_entry(entry)
        if entries is not None and len(entries) > state.rule_limit(COSMOSDB):
            raise ArmError(400, "BadRequest", f"ipRules can hold at most {state.rule_limit(COSMOSDB)} entries.")
        tags = _tags(payload)
        if fail_write(request):
            raise busy(account)
        with state.lock:
            check_if_match(request, account)
            _replace(state, account, entries, tags)
            return _answer(cosmos_body(account), account)

    def get_storage(request: Request, state: State) -> Response:
        with state.lock:
            account = find_resource(request, state, state.accounts, STORAGE, "name")
            return _answer(storage_body(account), account)

    def patch_storage(request: Request, state: State) -> Response:
        payload = request.json()
        acls = (payload.get("properties") or {}).get("networkAcls")
        entries = _entries(acls["ipRules"], "value", "networkAcls.ipRules") if acls and "ipRules" in acls else None
        v6 = _entries(acls["ipv6Rules"], "value", "networkAcls.ipv6Rules") if acls and "ipv6Rules" in acls else None
        if entries is not None and any(":" in e for e in entries):
            raise ArmError(400, "NetworkAclsValidationFailure", "IPv6 entries belong in networkAcls.ipv6Rules.")
        for entry in [*(entries or []), *(v6 or [])]:
            _check_storage_entry(entry)
        if entries is not None and len(entries) > state.rule_limit(STORAGE):
            raise ArmError(
                400,
                "NetworkAclsValidationFailure",
                f"A storage account supports at most {state.rule_limit(STORAGE)} IP rules.",
            )
        tags = _tags(payload)
        with state.lock:
            account = find_resource(request, state, state.accounts, STORAGE, "name")
            if fail_write(request):
                raise busy(account)
            check_if_match(request, account)
            if entries is not None or v6 is not None:  # each list replaces its own half
                kept4 = [e for e in account.ip_rules if ":" not in e] if entries is None else entries
                kept6 = [e for e in account.ip_rules if ":" in e] if v6 is None else v6
                entries = kept4 + kept6
            if acls and isinstance(acls.get("defaultAction"), str):
                account.default_action = acls["defaultAction"]
            _replace(state, account, entries, tags)
            return _answer(storage_body(account), account)

    return [
        route("GET", cosmos, get_cosmos, f"{COSMOSDB}/read"),
        route("PATCH", cosmos, patch_cosmos, f"{COSMOSDB}/write"),
        route("GET", storage, get_storage, f"{STORAGE}/read"),
        route("PATCH", storage, patch_storage, f"{STORAGE}/write"),
    ]
