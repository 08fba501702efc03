"""App Service access restrictions: `config/web` `ipSecurityRestrictions` of an app, so a back-end API app
only accepts its front ends. Allow rules named like any other (`allowlist-20.1.2.3-20.1.2.6`), their
`ipAddress` the range's CIDRs (IPv4 or IPv6), at the configured `restriction_priority`.

The list is written whole by PATCH with `If-Match`: every entry allowlist did not write (a person's
rules, Deny rules, service-tag and VNet rules) goes back byte for byte, and `scmIpSecurityRestrictions`
and the default action are never sent. Writes to one app go one at a time. An app with no restrictions
accepts everything, so allowlist never adds the first rule (that would shut out every other client).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from allowlist.armerrors import describe
from allowlist.jsonshape import json_object
from allowlist.model import ExistingRule, IpRange, TargetRef
from allowlist.targets.base import (
    Backend,
    Capabilities,
    Firewall,
    RuleWrite,
    TargetWriteError,
    one_by_one,
    with_opaque,
)

if TYPE_CHECKING:
    from allowlist.azure import ArmClients

ARM_TYPE = "Microsoft.Web/sites"
API_VERSION = "2025-05-01"
IMPLICIT = 2147483647  # the priority of the "Allow all" entry ARM shows for an app without restrictions
ATTEMPTS = 4


def restriction_range(entry: Mapping[str, Any]) -> IpRange | None:
    """An Allow entry whose ipAddress CIDRs make one contiguous range of one IP version; else None."""
    text = entry.get("ipAddress")
    if entry.get("action", "Allow") != "Allow" or not isinstance(text, str) or entry.get("vnetSubnetResourceId"):
        return None
    try:
        networks = sorted(ipaddress.ip_network(t.strip(), strict=False) for t in text.split(",") if t.strip())
    except (ValueError, TypeError):
        return None
    if not networks or len({n.version for n in networks}) != 1:
        return None
    for a, b in itertools.pairwise(networks):
        if int(b[0]) != int(a[-1]) + 1:
            return None
    return IpRange(int(networks[0][0]), int(networks[-1][-1]), networks[0].version)


def cidrs(rule_range: IpRange) -> str:
    first, last = ipaddress.ip_address(rule_range.first), ipaddress.ip_address(rule_range.last)
    return ",".join(str(n) for n in ipaddress.summarize_address_range(first, last))


def restriction(name: str, rule_range: IpRange, priority: int) -> dict[str, Any]:
    """The entry allowlist writes for one rule: by apply, and in rendered lists."""
    return {"name": name, "ipAddress": cidrs(rule_range), "action": "Allow", "tag": "Default",
            "priority": priority, "description": "managed by allowlist"}  # fmt: skip


def with_rule(entries: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    taken = any(str(e.get("name", "")).casefold() == str(entry["name"]).casefold() for e in entries)
    return entries if taken else [*entries, entry]  # a rule of that name appeared: never overwrite it


def without_rule(entries: list[dict[str, Any]], name: str, rule_range: IpRange) -> list[dict[str, Any]]:
    """Drops only allowlist's own entry: that name holding that range (a person's edit stays)."""
    return [e for e in entries if not (str(e.get("name", "")).casefold() == name.casefold()
                                       and restriction_range(e) == rule_range)]  # fmt: skip


class AccessRestrictions:
    def __init__(self, ref: TargetRef, clients: ArmClients, capabilities: Capabilities) -> None:
        self.ref = ref
        self.capabilities = capabilities
        self._clients = clients

    def _send(self, method: str, body: Mapping[str, Any] | None = None, etag: str | None = None) -> Any:
        return self._clients.send(method, f"{self.ref.id}/config/web?api-version={API_VERSION}", body, etag)

    def _entries(self) -> tuple[list[dict[str, Any]], str | None]:
        """The restrictions as ARM holds them, without the implicit "Allow all", and the ETag."""
        response = self._send("GET")
        body = response.json()
        items = json_object(json_object(body).get("properties")).get("ipSecurityRestrictions")
        entries = [i for i in items or [] if isinstance(i, dict) and i.get("priority") != IMPLICIT]
        return entries, response.headers.get("ETag")

    def read(self, prefix: str) -> Firewall:
        del prefix  # ownership is in the names
        rules, opaque = [], []
        entries = self._entries()[0]
        for entry in entries:
            name, found = entry.get("name"), restriction_range(entry)
            if isinstance(name, str) and name and found is not None:
                rules.append(ExistingRule(name, found))
            else:
                opaque.append(str(name or "<unnamed>"))
        return with_opaque(
            rules, opaque, "restriction '{}' is not an IP allow rule", entries=tuple(map(json.dumps, entries))
        )

    def _rewrite(self, change: Any) -> None:
        """Read, change, PATCH with If-Match. Each attempt starts from a fresh read and `change` is idempotent,
        so a lost answer or a concurrent edit (412) is simply tried again; the pipeline never retries a PATCH
        whose answer was lost."""
        from azure.core.exceptions import AzureError, HttpResponseError, ServiceResponseError

        for attempt in range(1, ATTEMPTS + 1):
            try:
                entries, etag = self._entries()
                new = change(entries)
                if bool(entries) != bool(new):  # an app without restrictions accepts everyone
                    raise TargetWriteError(
                        f"refused: {self.ref.name} would go from {len(entries)} to {len(new)} access restrictions, "
                        "and an app without any accepts every client"
                    )
                self._send("PATCH", {"properties": {"ipSecurityRestrictions": new}}, etag)
                return
            except HttpResponseError as exc:
                if exc.status_code == 412 and attempt < ATTEMPTS:
                    continue  # someone changed the list since it was read: read and merge again
                busy = exc.status_code in (409, 429) or (exc.status_code or 0) >= 500  # "being updated, retry later"
                if busy and attempt < ATTEMPTS:
                    time.sleep(self._clients.settings.retry_backoff * attempt)
                    continue
                raise TargetWriteError(describe(exc)) from exc
            except ServiceResponseError as exc:
                if attempt < ATTEMPTS:
                    continue
                raise TargetWriteError(f"no answer from ARM: {exc}") from exc
            except AzureError as exc:
                raise TargetWriteError(describe(exc)) from exc

    def _write_one(self, write: RuleWrite) -> None:
        name, rule_range = write.name, write.range
        if write.action == "delete":
            self._rewrite(lambda entries: without_rule(entries, name, rule_range))
        else:
            entry = restriction(name, rule_range, self._clients.settings.restriction_priority)
            self._rewrite(lambda entries: with_rule(entries, entry))

    def write_all(self, writes: Sequence[RuleWrite], width: int, each: Callable[[], None]) -> list[Exception | None]:
        del width  # each write rewrites the app's whole list: one at a time
        return one_by_one(writes, self._write_one, each)


BACKEND = Backend(
    kind="webapp",
    arm_type=ARM_TYPE,
    capabilities=Capabilities(
        label="App Service app's access restrictions",
        named_ranges=True,
        ipv6=True,
        default_rule_limit=512,
        long_running_writes=False,
        empty_list_means_open=True,
        serial_writes=True,
    ),
    client=("azure.mgmt.resource.subscriptions", "SubscriptionClient"),  # raw requests, see _send
    api_version=API_VERSION,
    opener=AccessRestrictions,
    read_actions=(f"{ARM_TYPE}/config/read", f"{ARM_TYPE}/slots/config/read"),
    write_actions=(f"{ARM_TYPE}/config/write", f"{ARM_TYPE}/slots/config/write"),
    iac={"terraform": "azapi_update_resource", "terraform_local": "allowlist_access_restrictions"},
)
