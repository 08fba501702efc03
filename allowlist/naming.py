"""How a desired range becomes what a back end stores: a named rule, or list entries.

Names come from the range they hold, so they never depend on the order ARM lists addresses in, and a
rule that exists under its name already holds what the name says.
"""

from __future__ import annotations

import ipaddress

from allowlist.model import IpRange
from allowlist.targets.base import Capabilities

V6_MARK = "v6-"  # IPv6 rule names: `allowlist-v6-2603_1020_206_3__1a`, since names cannot hold ':'


def rule_name(prefix: str, rule_range: IpRange, capabilities: Capabilities) -> str:
    """`allowlist-20.1.2.3-20.1.2.6`; `allowlist-20_1_2_3-20_1_2_6` where the service refuses dots."""
    dash = capabilities.name_dash_as
    if rule_range.version == 6:
        return (
            prefix.replace("-", dash)
            + V6_MARK.replace("-", dash)
            + str(rule_range).replace(":", "_").replace("-", dash)
        )
    return prefix.replace("-", dash) + str(rule_range).replace(".", capabilities.name_dots_as).replace("-", dash)


def parse_rule_name(prefix: str, name: str, capabilities: Capabilities) -> IpRange | None:
    """The range a name encodes, when it is exactly what `rule_name` writes for that range; else None.

    Ownership is this grammar, not a bare prefix match: with prefix "o", "office-vpn" is not ours.
    Names compare without case, as the services compare them.
    """
    dash = capabilities.name_dash_as
    written_prefix = prefix.replace("-", dash)
    if not name.casefold().startswith(written_prefix.casefold()):
        return None
    body = name[len(written_prefix) :]
    mark = V6_MARK.replace("-", dash)
    if body.casefold().startswith(mark):
        body = body[len(mark) :]
        first, _, last = body.partition(dash) if dash != "_" else (body, "", "")
        first, last = first.replace("_", ":"), last.replace("_", ":")
        if "." in body:  # an IPv4-mapped or embedded form is never one allowlist writes
            return None
    elif dash == capabilities.name_dots_as:  # one separator for both (Redis): four numbers, or eight
        parts = body.split(dash)
        if len(parts) not in (4, 8):
            return None
        first, last = ".".join(parts[:4]), ".".join(parts[4:])
    else:
        if capabilities.name_dots_as != ".":
            body = body.replace(capabilities.name_dots_as, ".")
        first, _, last = body.partition(dash)
    try:
        found = IpRange.parse(first, last or None)
    except ValueError:
        return None
    return found if rule_name(prefix, found, capabilities).casefold() == name.casefold() else None


def list_entries(rule_range: IpRange, capabilities: Capabilities) -> list[tuple[str, IpRange]]:
    """The fewest CIDR entries covering the range, single addresses written bare.

    Storage refuses /31 and /32 CIDRs, so blocks smaller than a /30 become their single addresses.
    """
    entries: list[tuple[str, IpRange]] = []
    first, last = ipaddress.ip_address(rule_range.first), ipaddress.ip_address(rule_range.last)
    full = first.max_prefixlen
    limit = capabilities.single_address_max_prefix if rule_range.version == 4 else full
    for network in ipaddress.summarize_address_range(first, last):
        v = network.version
        if network.prefixlen == full or network.prefixlen > limit:
            entries += [(str(a), IpRange(int(a), int(a), v)) for a in network]
        else:
            entries.append((str(network), IpRange(int(network[0]), int(network[-1]), v)))
    return entries
