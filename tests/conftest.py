"""Shared fixtures: a running emulator over a small estate, and real SDK clients pointed at it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from allowlist.azure import ArmClients, ArmSettings, StaticTokenCredential
from allowlist.emulator import Emulator, FaultConfig, build_estate

SUB1 = "11111111-1111-4111-8111-111111111111"
SUB2 = "22222222-2222-4222-8222-222222222222"
SQL1 = f"/subscriptions/{SUB1}/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-one"
SQL2 = f"/subscriptions/{SUB2}/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-two"


def site(sub: str, group: str, name: str, possible: str, **extra: Any) -> dict[str, Any]:
    return {
        "subscription": sub,
        "resource_group": group,
        "name": name,
        "outbound_ip_addresses": possible.split(",")[0],
        "possible_outbound_ip_addresses": possible,
        **extra,
    }


def base_estate() -> dict[str, Any]:
    """Two subscriptions, a few apps (one with a slot), one SQL server in each."""
    return {
        "emulator": {"page_size": 2},
        "subscriptions": [{"id": SUB1, "name": "One"}, {"id": SUB2, "name": "Two"}],
        "sites": [
            site(SUB1, "rg-web", "web-a", "20.0.0.1,20.0.0.2", tags={"team": "a"}, slots=[{"name": "staging"}]),
            site(SUB1, "rg-web", "web-b", "20.0.0.2,20.0.0.3,40.0.0.9", kind="app,linux", tags={"team": "a"}),
            site(SUB1, "rg-func", "func-c", "30.0.0.1", kind="functionapp", tags={"team": "c"}),
            site(SUB2, "rg-web", "web-d", "50.0.0.1,50.0.0.2", tags={"team": "a"}),
        ],
        "sql_servers": [
            {
                "subscription": SUB1,
                "resource_group": "rg-data",
                "name": "sql-one",
                "firewall_rules": [
                    {"name": "AllowAllWindowsAzureIps", "start": "0.0.0.0", "end": "0.0.0.0"},
                    {"name": "office", "start": "198.51.100.0", "end": "198.51.100.255"},
                ],
            },
            {"subscription": SUB2, "resource_group": "rg-data", "name": "sql-two"},
        ],
    }


class StaticCred(StaticTokenCredential):
    def __init__(self) -> None:
        super().__init__("test-token")


@pytest.fixture(autouse=True)
def never_the_default_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    """DefaultAzureCredential would probe managed identity endpoints; every test uses a static token."""
    monkeypatch.setenv("ALLOWLIST_ACCESS_TOKEN", "secret-pipeline-token")


@pytest.fixture(autouse=True)
def quick_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """One run at a time in most tests: no need to wait for a rival run's lease to land."""
    monkeypatch.setattr("allowlist.apply.LEASE_SETTLE", 0.0)
    monkeypatch.setattr("allowlist.targets.lease.CLOCK_SKEW", 0.0)  # one clock: runs in a test are seconds apart


@pytest.fixture
def estate() -> dict[str, Any]:
    return base_estate()


@pytest.fixture
def emulator(estate: dict[str, Any]) -> Iterator[Emulator]:
    loaded = build_estate(estate)
    with Emulator(loaded.state, page_size=loaded.page_size, faults=FaultConfig()) as emu:
        yield emu


def sdk_options(emu: Emulator) -> dict[str, Any]:
    """What the real SDK clients need to talk to the emulator, fast: no back-off between retries."""
    return {
        "base_url": emu.base_url,
        "connection_verify": str(emu.ca_path),
        "credential_scopes": ["https://management.azure.com/.default"],
        "retry_backoff_factor": 0,
        "polling_interval": 0,
    }


@pytest.fixture
def clients(emulator: Emulator) -> ArmClients:
    return ArmClients(
        ArmSettings(endpoint=emulator.base_url, ca_bundle=str(emulator.ca_path), retry_backoff=0),
        StaticCred(),
    )


@pytest.fixture
def cli_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Emulator:
    """Environment for running the CLI in-process against the emulator, in a clean folder."""
    monkeypatch.setenv("ALLOWLIST_ARM_ENDPOINT", emulator.base_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_path))
    monkeypatch.setenv("ALLOWLIST_ACCESS_TOKEN", "secret-pipeline-token")
    monkeypatch.chdir(tmp_path)
    return emulator


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
