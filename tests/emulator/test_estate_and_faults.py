"""Estate files and fault specs: valid ones load, wrong ones fail naming the file and the entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allowlist.emulator import EstateError, FaultConfig, FaultSpecError, build_estate, demo_estate_path, load_estate
from allowlist.emulator.faults import Bucket, Faults
from allowlist.emulator.http import ArmError
from tests.conftest import SUB1, base_estate


def test_demo_estate_loads_with_its_awkward_cases() -> None:
    estate = load_estate(demo_estate_path())
    sites = {s.name: s for s in estate.state.sites.values()}
    assert sites["shop-search-v4"].possible_outbound_ip_addresses == ""
    assert sites["payments-api"].application_traffic is True and not sites["payments-api"].all_traffic
    assert "staging" in sites["shop-web"].slots
    assert estate.page_size == 3
    assert len(estate.state.servers) == 5 and len(estate.state.accounts) == 3  # sql-legacy, kv-legacy: for audit


def test_json_estate_is_equivalent(tmp_path: Path) -> None:
    path = tmp_path / "estate.json"
    path.write_text(json.dumps(base_estate()))
    estate = load_estate(path)
    assert {s.name for s in estate.state.sites.values()} == {"web-a", "web-b", "func-c", "web-d"}


def test_slot_inherits_and_overrides_its_site() -> None:
    data = base_estate()
    data["sites"][0]["slots"] = [{"name": "blue", "possible_outbound_ip_addresses": ["60.0.0.1"]}]
    site = next(s for s in build_estate(data).state.sites.values() if s.name == "web-a")
    slot = site.slots["blue"]
    assert slot.possible_outbound_ip_addresses == "60.0.0.1"
    assert slot.outbound_ip_addresses == site.outbound_ip_addresses
    assert slot.id.endswith("/sites/web-a/slots/blue")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["sites"][1].update(colour="red"), "<estate>: sites[1]: unknown key 'colour'"),
        (lambda d: d["sites"][0].pop("name"), "<estate>: sites[0]: 'name' is required"),
        (
            lambda d: d["sites"][0].update(subscription="nope"),
            "sites[0].subscription: 'nope' is not in [[subscriptions]]",
        ),
        (lambda d: d["sites"][0].update(all_traffic="yes"), "sites[0].all_traffic: must be true or false"),
        (lambda d: d.update(subnets=[{"id": "/x", "bogus": 1}]), "subnets[0]: unknown key 'bogus'"),
        (
            lambda d: d.update(public_ip_prefixes=[{"id": "/subscriptions/s/resourceGroups/g/p", "ip_prefix": "x"}]),
            "public_ip_prefixes[0]",
        ),
        (lambda d: d["sites"][0].update(possible_outbound_ip_addresses=5), "sites[0].possible_outbound_ip_addresses"),
        (lambda d: d["sites"].append(dict(d["sites"][0])), "sites[4]: site 'web-a' is defined twice"),
        (lambda d: d["emulator"].update(page_size=0), "emulator.page_size: must be a whole number of at least 1"),
        (
            lambda d: d["sql_servers"][0]["firewall_rules"].append({"name": "x"}),
            "firewall_rules[2]: 'start' is required",
        ),
        (lambda d: d.update(extra=1), "top level: unknown key 'extra'"),
    ],
)
def test_estate_errors_name_the_entry(change: Any, message: str) -> None:
    data = base_estate()
    change(data)
    with pytest.raises(EstateError) as caught:
        build_estate(data)
    assert message in str(caught.value)


def test_unreadable_estate_files(tmp_path: Path) -> None:
    with pytest.raises(EstateError, match="cannot read the estate file"):
        load_estate(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sites]\n")
    with pytest.raises(EstateError, match=r"bad.toml: not valid TOML"):
        load_estate(bad)


def test_fault_spec_parses_every_fault() -> None:
    config = FaultConfig.parse(
        f"latency=20, error-rate=0.1,drop-rate=0.05,throttle=off,reads=10/5,writes=3/1,forbid=/subscriptions/{SUB1}",
        seed=4,
    )
    assert config == FaultConfig(
        latency_ms=20, error_rate=0.1, drop_rate=0.05, throttle=False, reads=Bucket(10, 5), writes=Bucket(3, 1),
        forbid=(f"/subscriptions/{SUB1}",), seed=4,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("latency", "needs the form key=value"),
        ("error-rate=2", "a rate is a number from 0 to 1"),
        ("reads=250", "a bucket is BURST/PER_SECOND"),
        ("throttle=maybe", "throttle is on or off"),
        ("forbid=subscriptions", "forbid takes a scope"),
        ("colour=red", "unknown fault"),
    ],
)
def test_bad_fault_specs(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        FaultConfig.parse(spec)


def test_token_buckets_throttle_per_subscription_and_refill() -> None:
    faults = Faults(FaultConfig(reads=Bucket(2, 10.0), writes=Bucket(1, 1.0)))
    path = f"/subscriptions/{SUB1}/providers/Microsoft.Web/sites"
    faults.throttle("GET", path, now=0.0)
    faults.throttle("GET", path, now=0.0)
    with pytest.raises(ArmError) as caught:
        faults.throttle("GET", path, now=0.0)
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    faults.throttle("GET", "/subscriptions/other/providers/x", now=0.0)  # another subscription, another bucket
    faults.throttle("GET", path, now=0.2)  # refilled two tokens in 0.2 s at 10/s
    faults.throttle("PUT", path, now=0.2)  # writes have their own bucket
    with pytest.raises(ArmError):
        faults.throttle("DELETE", path, now=0.3)


def test_stats_give_the_span_of_the_rule_writes_apart_from_the_reads_and_leases() -> None:
    from allowlist.emulator.server import LoggedRequest, _in_flight

    def logged(method: str, start: float, end: float) -> LoggedRequest:
        return LoggedRequest(method, "/x", "", 200, at=end, duration=end - start)

    requests = [logged("GET", 0.0, 1.0), logged("PATCH", 1.0, 2.0), logged("PUT", 2.0, 3.0),
                logged("PUT", 2.5, 3.5), logged("DELETE", 3.0, 4.0), logged("PATCH", 4.0, 6.0)]  # fmt: skip
    assert _in_flight(requests) == (6.0, round(7.0 / 6.0, 2))
    writes = [r for r in requests if r.method in ("PUT", "DELETE")]
    assert _in_flight(writes) == (2.0, 1.5)  # 3 seconds served over 2.0: 1.5 at once
    assert _in_flight([]) == (0.0, 0.0)


def test_a_provider_denied_across_a_subscription_is_denied_in_its_groups() -> None:
    from allowlist.emulator.faults import _within

    denied = "/subscriptions/s1/providers/microsoft.web"
    assert _within("/subscriptions/s1/providers/microsoft.web/sites", denied)
    assert _within("/subscriptions/s1/resourcegroups/rg/providers/microsoft.web/sites", denied)
    assert _within("/subscriptions/s1/resourcegroups/rg/providers/microsoft.web/sites/a/slots", denied)
    assert not _within("/subscriptions/s1/resourcegroups/rg/providers/microsoft.webx/sites", denied)
    assert not _within("/subscriptions/s2/resourcegroups/rg/providers/microsoft.web/sites", denied)
    assert not _within("/subscriptions/s1/resourcegroups/rg/providers/microsoft.sql/servers", denied)
    assert not _within("/subscriptions/s1/resources", denied)
