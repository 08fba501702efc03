"""Options shared by the commands that read the estate, and the typed context they build."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from allowlist.errors import ConfigError

if TYPE_CHECKING:
    from allowlist.azure import ArmClients
    from allowlist.config import Scope, Settings
    from allowlist.report import Format

DEFAULT_CONFIG = Path("allowlist.toml")
SCOPE = "Scope (one-off, instead of the config's [[sync]] blocks)"
SETTINGS = "Settings (override the config's [settings])"
OUTPUT = "Output"


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config; default ./allowlist.toml when it exists.", show_default=False),
]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option("--target", "-t", help="Resource ID of a SQL server to sync. Repeatable.", rich_help_panel=SCOPE),
]
SubscriptionOpt = Annotated[
    list[str] | None,
    typer.Option("--subscription", "-s", help="Subscription ID to read apps from. Repeatable.", rich_help_panel=SCOPE),
]
GroupOpt = Annotated[
    list[str] | None,
    typer.Option("--resource-group", "-g", help="Resource group glob. Repeatable.", rich_help_panel=SCOPE),
]
NameOpt = Annotated[
    list[str] | None,
    typer.Option("--name", "-n", help="App name glob ('web-*', 'web/staging'). Repeatable.", rich_help_panel=SCOPE),
]
TagOpt = Annotated[
    list[str] | None,
    typer.Option("--tag", help="KEY=VALUE the app must carry (VALUE * = any). Repeatable.", rich_help_panel=SCOPE),
]
KindOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kind", help="Kind token: app, functionapp, linux, container ... Repeatable.", rich_help_panel=SCOPE
    ),
]
NoSlotsOpt = Annotated[bool, typer.Option("--no-slots", help="Leave deployment slots out.", rich_help_panel=SCOPE)]
CurrentOpt = Annotated[
    bool,
    typer.Option(
        "--current-only",
        help="Use outboundIpAddresses (today's) instead of possibleOutboundIpAddresses (every address "
        "the app may use, the documented advice).",
        rich_help_panel=SETTINGS,
    ),
]
PrefixOpt = Annotated[
    str | None, typer.Option("--prefix", help="Name prefix of the rules allowlist owns.", rich_help_panel=SETTINGS)
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--rule-limit", min=1, help="Most firewall rules a server may hold.", rich_help_panel=SETTINGS),
]
WideOpt = Annotated[
    bool,
    typer.Option("--allow-wide-ranges", help="Permit rules wider than a /16.", rich_help_panel=SETTINGS),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option("--concurrency", min=1, max=64, help="Parallel ARM calls.", rich_help_panel=SETTINGS),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--arm-endpoint",
        envvar="ALLOWLIST_ARM_ENDPOINT",
        help="ARM endpoint: sovereign clouds, Azure Stack, the emulator. Default https://management.azure.com.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="How to print the result.", rich_help_panel=OUTPUT)
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show kept rules, notes and request counts.", rich_help_panel=OUTPUT)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only data and errors.", rich_help_panel=OUTPUT)]


@dataclass(frozen=True)
class ScopeFlags:
    config: Path | None = None
    targets: tuple[str, ...] = ()
    subscriptions: tuple[str, ...] = ()
    resource_groups: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    no_slots: bool = False
    current_only: bool = False
    prefix: str | None = None
    rule_limit: int | None = None
    allow_wide_ranges: bool = False
    concurrency: int | None = None

    @property
    def selects(self) -> bool:
        return bool(self.targets or self.subscriptions or self.resource_groups or self.names or self.tags or self.kinds)


def resolve_scope(flags: ScopeFlags, need_targets: bool = True) -> Scope:
    """Config file first; selector flags replace its [[sync]] blocks; setting flags override [settings]."""
    from allowlist.config import Scope, load_scope, override_settings, scope_from_flags

    path = flags.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    scope = load_scope(path) if path is not None else Scope()
    overrides: dict[str, object] = {}
    if flags.current_only:
        overrides["addresses"] = "current"
    if flags.prefix is not None:
        overrides["prefix"] = flags.prefix
    if flags.rule_limit is not None:
        overrides["rule_limit"] = flags.rule_limit
    if flags.allow_wide_ranges:
        overrides["allow_wide_ranges"] = True
    if flags.concurrency is not None:
        overrides["concurrency"] = flags.concurrency
    settings = override_settings(scope.settings, overrides, "command line")
    if flags.selects or not scope.blocks:
        scope = scope_from_flags(
            settings,
            list(flags.targets),
            list(flags.subscriptions),
            list(flags.resource_groups),
            list(flags.names),
            list(flags.tags),
            list(flags.kinds),
            slots=not flags.no_slots,
        )
    else:
        scope = replace(scope, settings=settings)
    if need_targets and not scope.targets:
        raise ConfigError(
            "nothing to sync: give --target RESOURCE_ID, or a config file with [[sync]] blocks "
            f"(looked for {path or DEFAULT_CONFIG})"
        )
    return scope


def make_clients(endpoint: str | None, settings: Settings) -> ArmClients:
    from allowlist.azure import PUBLIC_ARM, ArmClients, ArmSettings

    url = (endpoint or PUBLIC_ARM).rstrip("/")
    if not url.lower().startswith("https://"):
        raise ConfigError(f"--arm-endpoint '{url}' must be an https:// URL; TLS is never switched off")
    return ArmClients(
        ArmSettings(
            endpoint=url,
            ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE") or None,
            retry_total=settings.retry_total,
            retry_backoff=settings.retry_backoff,
        )
    )


def fmt(output: OutputFormat) -> Format:
    return output.value


def note(message: str, quiet: bool = False) -> None:
    """Diagnostics go to stderr so stdout stays data."""
    if not quiet:
        typer.echo(message, err=True)


def emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
