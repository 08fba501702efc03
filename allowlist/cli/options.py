"""Options shared by the commands that read the estate, and the typed context they build."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer

from allowlist.azure import ENDPOINT_ENV
from allowlist.errors import ConfigError

if TYPE_CHECKING:
    from allowlist.azure import ArmClients
    from allowlist.model import Progress
    from allowlist.planner import Plan
    from allowlist.report import Format
    from allowlist.scope import Scope, Settings

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
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="TOML config; default ./allowlist.toml when it exists.",
        show_default=False,
    ),
]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        "-t",
        metavar="RESOURCE_ID",
        help="Resource ID of a server or account to sync. Repeatable.",
        rich_help_panel=SCOPE,
    ),
]
SubscriptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--subscription",
        "-s",
        metavar="SUBSCRIPTION_ID",
        help="Subscription ID to read apps from. Repeatable.",
        rich_help_panel=SCOPE,
    ),
]
GroupOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--resource-group", "-g", metavar="GLOB", help="Resource group glob. Repeatable.", rich_help_panel=SCOPE
    ),
]
NameOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--name",
        "-n",
        metavar="GLOB",
        help="App name glob ('web-*', 'web/staging'). Repeatable.",
        rich_help_panel=SCOPE,
    ),
]
TagOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        metavar="KEY=VALUE",
        help="KEY=VALUE the app must carry (VALUE * = any). Repeatable.",
        rich_help_panel=SCOPE,
    ),
]
KindOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kind",
        metavar="KIND",
        help="Kind token: app, functionapp, linux, container ... Repeatable.",
        rich_help_panel=SCOPE,
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
    str | None,
    typer.Option(
        "--prefix", metavar="PREFIX", help="Name prefix of the rules allowlist owns.", rich_help_panel=SETTINGS
    ),
]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--rule-limit", metavar="N", min=1, help="Most firewall rules a server may hold.", rich_help_panel=SETTINGS
    ),
]
CompressOpt = Annotated[
    bool,
    typer.Option(
        "--compress",
        help="Over a rule limit, merge neighbouring ranges, opening the fewest extra addresses, instead of refusing.",
        rich_help_panel=SETTINGS,
    ),
]
WideOpt = Annotated[
    bool,
    typer.Option("--allow-wide-ranges", help="Permit rules wider than a /16.", rich_help_panel=SETTINGS),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        metavar="N",
        min=1,
        max=64,
        help="Parallel ARM reads (rule writes in flight: 8 times this).",
        rich_help_panel=SETTINGS,
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=1,
        help="Stop the run after this long (writes made so far are kept).",
        rich_help_panel=SETTINGS,
    ),
]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source",
        metavar="SOURCE",
        help="Where apps are read from: arm (a paged list per subscription, the default) or resource-graph "
        "(a few paged queries; may trail changes by minutes).",
        rich_help_panel=SETTINGS,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--arm-endpoint",
        metavar="URL",
        envvar=ENDPOINT_ENV,
        help="ARM endpoint: sovereign clouds, Azure Stack, the emulator. Default https://management.azure.com.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", metavar="FORMAT", help="text, json or markdown.", rich_help_panel=OUTPUT),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also show kept rules and per-app notes.", rich_help_panel=OUTPUT)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only data and errors.", rich_help_panel=OUTPUT)]


@dataclass(frozen=True)
class Common:
    """The options every estate-reading command shares, parsed once and passed as one value."""

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
    compress: bool = False
    concurrency: int | None = None
    timeout: float | None = None
    source: str | None = None
    arm_endpoint: str | None = None
    output: OutputFormat = OutputFormat.text
    verbose: bool = False
    quiet: bool = False

    @property
    def selects(self) -> bool:
        return bool(self.targets or self.subscriptions or self.resource_groups or self.names or self.tags or self.kinds)

    @property
    def policy_flags(self) -> list[str]:
        """The flags that change what a plan decides (a saved plan carries its own)."""
        given = {
            "--prefix": self.prefix is not None,
            "--rule-limit": self.rule_limit is not None,
            "--allow-wide-ranges": self.allow_wide_ranges,
            "--current-only": self.current_only,
            "--compress": self.compress,
        }
        return [flag for flag, set_ in given.items() if set_]

    def progress(self) -> Progress | None:
        from allowlist.cli.progress import make_progress

        return make_progress(self.quiet, self.output == OutputFormat.json)

    def runtime(self, base: Settings) -> Settings:
        """Runtime flags over `base`: how the run executes, never what it decides."""
        overrides: dict[str, object] = {}
        if self.concurrency is not None:
            overrides["concurrency"] = self.concurrency
        if self.timeout is not None:
            overrides["timeout"] = self.timeout
        if self.source is not None:
            overrides["source"] = self.source
        from allowlist.config import override_settings

        return override_settings(base, overrides, "command line")

    @property
    def format(self) -> Format:
        return self.output.value

    def note(self, message: str) -> None:
        note(message, self.quiet)


# (field, annotation, used only by commands that plan); the order is the order in --help.
_SHARED: list[tuple[str, Any, bool]] = [
    ("config", ConfigOpt, False),
    ("targets", TargetOpt, False),
    ("subscriptions", SubscriptionOpt, False),
    ("resource_groups", GroupOpt, False),
    ("names", NameOpt, False),
    ("tags", TagOpt, False),
    ("kinds", KindOpt, False),
    ("no_slots", NoSlotsOpt, False),
    ("current_only", CurrentOpt, False),
    ("prefix", PrefixOpt, True),
    ("rule_limit", LimitOpt, True),
    ("allow_wide_ranges", WideOpt, True),
    ("compress", CompressOpt, True),
    ("concurrency", ConcurrencyOpt, False),
    ("timeout", TimeoutOpt, False),
    ("source", SourceOpt, False),
    ("arm_endpoint", EndpointOpt, False),
    ("output", OutputOpt, False),
    ("verbose", VerboseOpt, False),
    ("quiet", QuietOpt, False),
]


def with_common_options(planning: bool = True) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Add the shared options to a command, which receives them as `common: Common`.

    Typer reads a command's options from its signature, so the wrapper shows the command's own
    parameters followed by the shared ones, and folds the shared ones back into one value.
    """
    shared = [(name, hint) for name, hint, planning_only in _SHARED if planning or not planning_only]
    defaults = {f.name: f.default for f in fields(Common)}

    def decorate(command: Callable[..., int]) -> Callable[..., int]:
        hints = get_type_hints(command, include_extras=True)
        own = [
            p.replace(annotation=hints[p.name])
            for p in inspect.signature(command).parameters.values()
            if p.name != "common"
        ]
        extra = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=_flag_default(defaults[name]), annotation=hint
            )
            for name, hint in shared
        ]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> int:
            values = {name: kwargs.pop(name) for name, _ in shared}
            values = {k: tuple(v or ()) if isinstance(defaults[k], tuple) else v for k, v in values.items()}
            return command(common=Common(**values), **kwargs)

        params = own + extra
        wrapper.__signature__ = inspect.Signature(params, return_annotation=int)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": int}
        return wrapper

    return decorate


def _flag_default(value: Any) -> Any:
    return None if isinstance(value, tuple) else value


def config_path(flags: Common) -> Path | None:
    """--config, else ./allowlist.toml when there is one."""
    return flags.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)


def resolve_scope(flags: Common, need_targets: bool = True) -> Scope:
    """Config file first; selector flags replace its [[sync]] blocks; setting flags override [settings]."""
    from allowlist.config import load_scope, override_settings, scope_from_flags
    from allowlist.scope import Scope

    path = config_path(flags)
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
    if flags.compress:
        overrides["compress"] = True
    settings = flags.runtime(override_settings(scope.settings, overrides, "command line"))
    if flags.selects or not scope.blocks:
        declared = (scope.egress, scope.acknowledged)  # still true of the network when flags choose the apps
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
        scope = replace(scope, egress=declared[0], acknowledged=declared[1])
    else:
        scope = replace(scope, settings=settings)
    if need_targets and not scope.targets:
        raise ConfigError(
            "nothing to sync: give --target RESOURCE_ID, or a config file with [[sync]] blocks "
            f"(looked for {path or DEFAULT_CONFIG})"
        )
    return scope


def plan_for(common: Common) -> tuple[Plan, Scope, ArmClients]:
    """What plan, apply and render share: the scope, the clients, and a fresh plan."""
    from allowlist.cli.progress import close
    from allowlist.sync import make_plan

    scope = resolve_scope(common)
    clients = make_clients(common.arm_endpoint, scope.settings)
    common.note(f"Reading apps and {len(scope.targets)} firewall(s) from {clients.settings.endpoint} ...")
    progress = common.progress()
    try:
        return make_plan(scope, clients, progress).plan, scope, clients
    finally:
        close(progress)


def make_clients(endpoint: str | None, settings: Settings) -> ArmClients:
    from allowlist.azure import PUBLIC_ARM, ArmClients, ArmSettings

    url = (endpoint or PUBLIC_ARM).rstrip("/")
    if not url.lower().startswith("https://"):
        raise ConfigError(f"--arm-endpoint '{url}' must be an https:// URL; TLS is never switched off")
    return ArmClients(
        ArmSettings(
            endpoint=url,
            ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None,
            retry_total=settings.retry_total,
            retry_backoff=settings.retry_backoff,
            poll_interval=settings.poll_interval,
            operation_timeout=settings.operation_timeout,
            deadline=None if settings.timeout is None else time.monotonic() + settings.timeout,
            restriction_priority=settings.restriction_priority,
        )
    )


def note(message: str, quiet: bool = False) -> None:
    """Diagnostics go to stderr so stdout stays data."""
    if not quiet:
        typer.echo(message, err=True)


def emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
