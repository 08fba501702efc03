"""Parsing the comma-separated address lists App Service returns, and merging addresses into ranges."""

from __future__ import annotations

import functools
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
    items = ",".join(text for text in texts if text).split(",")
    # Apps on one stamp list the same addresses, but not always in the same order: keyed by the set of
    # items, a 10,000-app estate's lists are parsed about 400 times, not 10,000. A result with rejects is
    # not kept, as it lists them in input order.
    key = frozenset(items)
    found = _PARSED.get(key)
    if found is None:
        found = _parse(items)
        if not found.rejected:
            if len(_PARSED) >= _PARSED_KEPT:
                _PARSED.clear()
            _PARSED[key] = found
    return found


_PARSED: dict[frozenset[str], ParsedAddresses] = {}
_PARSED_KEPT = 8192  # distinct address sets (stamps) kept; an estate has hundreds to a few thousand
EMPTY, REFUSED = -1, 0  # the version _address gives an empty item, and one it refuses


def _parse(items: list[str]) -> ParsedAddresses:
    """Its items go through the cached _address by map(), in C: a loop over them cost far more."""
    found = list(map(_address, items))
    ordered = sorted(set(found))  # empty, refused, IPv4, IPv6; each by number
    rejected: list[str] = []
    if ordered and ordered[0][0] <= REFUSED:
        rejected = [f"{item.strip()}: {why}" for item, (version, _, why) in zip(items, found, strict=True)
                    if version == REFUSED]  # fmt: skip
        ordered = [a for a in ordered if a[0] > REFUSED]
    v4 = tuple([text for version, _, text in ordered if version == 4])
    v6 = tuple([text for _, _, text in ordered[len(v4) :]])
    return ParsedAddresses(v4, v6, tuple(dict.fromkeys(rejected)))


@functools.lru_cache(maxsize=65536)
def _address(raw: str) -> tuple[int, int, str]:
    """(version, number, canonical text) of one item as listed, spaces around it allowed; (REFUSED, 0, why)
    or (EMPTY, 0, ""). An estate repeats a few thousand addresses across its apps' lists: each is parsed once."""
    item = raw.strip()
    if not item:
        return EMPTY, 0, ""
    try:
        address = ipaddress.ip_address(item)
    except ValueError:
        return REFUSED, 0, "not an IP address"
    if not address.is_global or address.is_multicast:
        return REFUSED, 0, "not a public address"
    return address.version, int(address), str(address)


def merge_ranges(addresses: Iterable[str]) -> list[IpRange]:
    """Merge IPv4 addresses into the fewest inclusive ranges; the result does not depend on input order."""
    return merge_numbers(int(ipaddress.IPv4Address(a)) for a in addresses)


def ipv4_number(address: str) -> int:
    """Fast for addresses already in canonical dotted form (AppEgress holds only those)."""
    return int.from_bytes(socket.inet_aton(address), "big")


def merge_numbers(numbers: Iterable[int], version: int = 4) -> list[IpRange]:
    ends: list[list[int]] = []  # [start, end] of each run, made into ranges once complete
    for n in sorted(set(numbers)):
        if ends and ends[-1][1] + 1 == n:
            ends[-1][1] = n
        else:
            ends.append([n, n])
    return [IpRange(start, end, version) for start, end in ends]
