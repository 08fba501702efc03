"""What a target's plan must not do, as findings for the gate: invalid names, ranges wider than allowed, more
rules than the limit, a list turned on or emptied, a ledger over the tag limit, too many deletes; and the
warnings about traffic an IP rule will not match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from allowlist.findings import Finding, Kind
from allowlist.model import AppEgress, ExistingRule, IpRange
from allowlist.scope import Settings
from allowlist.targets.base import Capabilities, Firewall
from allowlist.targets.ledger import TAGS_MAX, ledger_tags

if TYPE_CHECKING:
    from allowlist.planner import Change

WIDEST_PREFIX = 16  # ranges wider than a /16 need allow_wide_ranges
WIDEST_PREFIX_V6 = 64  # and IPv6 ranges wider than a /64


_WIDEST_SIZE = {4: 1 << (32 - WIDEST_PREFIX), 6: 1 << (128 - WIDEST_PREFIX_V6)}  # addresses, by IP version


def too_wide(rule_range: IpRange) -> bool:
    return rule_range.size > _WIDEST_SIZE[rule_range.version]


def write_findings(
    settings: Settings,
    capabilities: Capabilities,
    creates: list[Change],
    final_count: int,
    limit: int,
    unmanaged: int,
    tid: str,
    hint: str = "",
) -> list[Finding]:
    found = [
        Finding(
            Kind.INVALID_NAME, f"rule name '{c.name}' is not valid for a {capabilities.label}: change the prefix", tid
        )
        for c in creates
        if capabilities.named_ranges and not capabilities.valid_name(c.name)
    ][:1]
    if not settings.allow_wide_ranges:
        found += [
            Finding(Kind.WIDE_RANGE, f"range {c.range} holds {c.range.size} addresses, wider than a "
                    f"/{WIDEST_PREFIX if c.range.version == 4 else WIDEST_PREFIX_V6}; set allow_wide_ranges to "
                    "permit it", tid)
            for c in creates
            if too_wide(c.range)
        ]  # fmt: skip
    if final_count > limit:
        found.append(Finding(Kind.RULE_LIMIT, f"would hold {final_count} firewall rules ({unmanaged} not managed by "
                             f"allowlist), over the limit of {limit}{hint}", tid))  # fmt: skip
    return found


def list_findings(
    capabilities: Capabilities,
    firewall: Firewall,
    final_count: int,
    prefix: str,
    mine: list[ExistingRule],
    creates: list[Change],
    deletes: list[Change],
    tid: str,
) -> list[Finding]:
    found = []
    existing = firewall.count
    if capabilities.empty_list_means_open and existing == 0 and creates:
        found.append(
            "it has no IP rules, so it accepts every address: adding rules would turn its firewall on and shut "
            "out every other client; add a first rule yourself to opt in"
        )
    if capabilities.empty_list_means_open and existing > 0 and final_count == 0:
        found.append("removing these would leave no IP rules, which opens it to every address")
    if capabilities.named_ranges:
        return [Finding(Kind.LIST_SAFETY, message, tid) for message in found]
    owned_after = {r.name.casefold() for r in mine} - {c.name.casefold() for c in deletes}
    owned_after |= {c.name.casefold() for c in creates}
    ledger = len(ledger_tags(prefix, owned_after))
    if firewall.tag_count + ledger > TAGS_MAX:
        found.append(
            f"the ownership ledger needs {ledger} tags and the account has {firewall.tag_count} others, "
            f"over Azure's {TAGS_MAX} tags per resource"
        )
    return [Finding(Kind.LIST_SAFETY, message, tid) for message in found]


def region_warnings(capabilities: Capabilities, firewall: Firewall, apps: Sequence[AppEgress]) -> tuple[str, ...]:
    endpoint = capabilities.service_endpoint
    found = tuple(
        f"{app.name}'s subnet has a service endpoint for {endpoint}: its traffic reaches the {capabilities.label} "
        "from the VNet, so an IP rule will not match it (add a virtual network rule)"
        for app in apps
        if endpoint and endpoint in app.service_endpoints
    )
    if not capabilities.same_region_bypasses_rules or not firewall.location:
        return found
    here = firewall.location.replace(" ", "").lower()
    return found + tuple(
        f"{app.name} runs in {app.location}, the account's own region: Storage IP rules do not apply to "
        "requests from the same region (use a virtual network rule or a private endpoint)"
        for app in apps
        if app.location.replace(" ", "").lower() == here
    )


def delete_threshold(managed: int, deletes: int, wanted: int, settings: Settings) -> str | None:
    """octoDNS-style guard against a scope mistake wiping a firewall."""
    if deletes and deletes == managed and not wanted:
        return f"would remove all {managed} rules allowlist manages here and add none, force required"
    if managed >= settings.min_managed_for_percent and deletes * 100 > settings.max_delete_percent * managed:
        share = round(deletes * 100 / managed)
        return (
            f"Too many deletes, {share}% is over {settings.max_delete_percent:g}% ({deletes}/{managed}), force required"
        )
    return None
