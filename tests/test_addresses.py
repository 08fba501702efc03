from __future__ import annotations

import random

import pytest

from allowlist.addresses import merge_ranges, parse_address_list
from allowlist.model import IpRange


def test_parse_tolerates_spaces_duplicates_and_empty_entries() -> None:
    parsed = parse_address_list(" 20.0.0.2, 20.0.0.1,,20.0.0.2 ,")
    assert parsed.ipv4 == ("20.0.0.1", "20.0.0.2")
    assert parsed.rejected == ()


def test_parse_sorts_numerically_not_as_text() -> None:
    assert parse_address_list("20.0.0.10,20.0.0.9,3.0.0.1").ipv4 == ("3.0.0.1", "20.0.0.9", "20.0.0.10")


def test_ipv6_is_kept_apart_in_compressed_form() -> None:
    parsed = parse_address_list("20.0.0.1,2603:1020:0206:0003:0000:0000:0000:001a")
    assert parsed.ipv4 == ("20.0.0.1",)
    assert parsed.ipv6 == ("2603:1020:206:3::1a",)


@pytest.mark.parametrize("bad", ["0.0.0.0", "10.1.2.3", "127.0.0.1", "192.168.1.1", "169.254.1.1", "224.0.0.1"])
def test_non_public_addresses_are_rejected_never_allowlisted(bad: str) -> None:
    parsed = parse_address_list(f"20.0.0.1,{bad}")
    assert parsed.ipv4 == ("20.0.0.1",)
    assert parsed.rejected == (f"{bad}: not a public address",)


def test_garbage_is_reported() -> None:
    assert parse_address_list("20.0.0.1,not-an-ip,1.2.3").rejected == (
        "not-an-ip: not an IP address",
        "1.2.3: not an IP address",
    )


def test_none_and_empty_mean_no_addresses() -> None:
    assert parse_address_list(None, "", " , ").ipv4 == ()


def test_a_list_in_another_order_parses_the_same() -> None:
    # Apps on one stamp list its addresses in any order: one parse serves them all, whatever came first.
    first = parse_address_list("20.0.1.9, 20.0.1.2,2603:1020::1a,20.0.1.10")
    again = parse_address_list("2603:1020::1a,20.0.1.10, 20.0.1.2,20.0.1.9,20.0.1.2")
    assert first == again
    assert first.ipv4 == ("20.0.1.2", "20.0.1.9", "20.0.1.10")
    assert first.ipv6 == ("2603:1020::1a",)


def test_rejects_keep_each_lists_own_order() -> None:
    assert parse_address_list("20.0.2.1,nope,10.0.0.1").rejected == (
        "nope: not an IP address",
        "10.0.0.1: not a public address",
    )
    assert parse_address_list("10.0.0.1,20.0.2.1,nope").rejected == (
        "10.0.0.1: not a public address",
        "nope: not an IP address",
    )


def test_the_parse_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from allowlist import addresses

    monkeypatch.setattr(addresses, "_PARSED", {})
    monkeypatch.setattr(addresses, "_PARSED_KEPT", 4)
    for n in range(10):
        assert parse_address_list(f"20.0.3.{n},20.0.4.{n}").ipv4 == (f"20.0.3.{n}", f"20.0.4.{n}")
        assert len(addresses._PARSED) <= 4


def test_merge_contiguous_addresses() -> None:
    ranges = merge_ranges(["20.0.0.3", "20.0.0.1", "20.0.0.2", "20.0.0.5", "20.0.1.0", "20.0.0.255"])
    assert [str(r) for r in ranges] == ["20.0.0.1-20.0.0.3", "20.0.0.5", "20.0.0.255-20.0.1.0"]


def test_merge_does_not_depend_on_order() -> None:
    addresses = [f"40.{i // 256}.{i % 256}.{j}" for i in range(3) for j in (1, 2, 3, 7, 9)]
    shuffled = list(addresses)
    random.Random(5).shuffle(shuffled)
    assert merge_ranges(addresses) == merge_ranges(shuffled) == merge_ranges(addresses + shuffled)


def test_ip_range_parse_and_bounds() -> None:
    r = IpRange.parse("1.2.3.4", "1.2.3.8")
    assert (r.first, r.last, r.size, str(r)) == ("1.2.3.4", "1.2.3.8", 5, "1.2.3.4-1.2.3.8")
    assert str(IpRange.parse("9.9.9.9")) == "9.9.9.9"
    with pytest.raises(ValueError):
        IpRange.parse("1.2.3.9", "1.2.3.4")
    v6 = IpRange.parse("2001:db8::1", "2001:db8::3")
    assert (v6.version, v6.size, str(v6)) == (6, 3, "2001:db8::1-2001:db8::3")
    assert v6.span[0] >= 2**32 and IpRange.parse("0.0.0.1").span == (1, 1)  # one line, never overlapping
    with pytest.raises(ValueError):
        IpRange.parse("1.2.3.4", "2001:db8::1")
