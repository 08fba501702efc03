"""A local Azure Resource Manager emulator: HTTPS on 127.0.0.1, driven by the real Azure SDK."""

from allowlist.emulator.estate import Estate, EstateError, build_estate, demo_estate_path, load_estate
from allowlist.emulator.faults import FaultConfig, FaultSpecError
from allowlist.emulator.server import Emulator, LoggedRequest
from allowlist.emulator.state import DbServer, FirewallRule, Site, State, Subscription

__all__ = [
    "DbServer",
    "Emulator",
    "Estate",
    "EstateError",
    "FaultConfig",
    "FaultSpecError",
    "FirewallRule",
    "LoggedRequest",
    "Site",
    "State",
    "Subscription",
    "build_estate",
    "demo_estate_path",
    "load_estate",
]
