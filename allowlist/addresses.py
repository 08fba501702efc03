"""Parsing the comma-separated address lists App Service returns, and merging addresses into ranges."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from allowlist.model import IpRange


@dataclass(frozen=True)
class ParsedAddresses:
    ipv4: tuple[str, ...]  # public, sorted numerically, unique
    ipv6: tuple[str, ...]  # compressed form, sorted, unique
    rejected: tuple[str, ...]  # "text: why", in input order


def parse_address_list(*texts: str | None) -> ParsedAddresses:
    """Parse ARM's "a,b, c,,d" strings: tolerate spaces, duplicates and empty entries.

    Addresses that are not public (private, loopback, 0.0.0.0 ...) are rejected, never allowlisted:
    0.0.0.0 would turn into SQL's "allow every Azure service" rule.
    """
    v4: set[ipaddress.IPv4Address] = set()
    v6: set[ipaddress.IPv6Address] = set()
    rejected: list[str] = []
    for text in texts:
        for item in (text or "").split(","):
            item = item.strip()
            if not item:
                continue
            try:
                address = ipaddress.ip_address(item)
            except ValueError:
                rejected.append(f"{item}: not an IP address")
                continue
            if not address.is_global or address.is_multicast:
                rejected.append(f"{item}: not a public address")
            elif isinstance(address, ipaddress.IPv4Address):
                v4.add(address)
            else:
                v6.add(address)
    return ParsedAddresses(
        tuple(str(a) for a in sorted(v4)), tuple(str(a) for a in sorted(v6)), tuple(dict.fromkeys(rejected))
    )


def merge_ranges(addresses: Iterable[str]) -> list[IpRange]:
    """Merge IPv4 addresses into the fewest inclusive ranges; the result does not depend on input order."""
    return merge_numbers(int(ipaddress.IPv4Address(a)) for a in addresses)


def ipv4_number(address: str) -> int:
    """Fast for addresses already in canonical dotted form (AppEgress holds only those)."""
    return int.from_bytes(socket.inet_aton(address), "big")


def merge_numbers(numbers: Iterable[int], version: int = 4) -> list[IpRange]:
    ranges: list[IpRange] = []
    for n in sorted(set(numbers)):
        if ranges and ranges[-1].end + 1 == n:
            ranges[-1] = IpRange(ranges[-1].start, n, version)
        else:
            ranges.append(IpRange(n, n, version))
    return ranges
