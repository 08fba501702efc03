"""The `allowlist` command: every expected error becomes one line on stderr and an exit code.

Exit codes: 0 success; 1 error (bad flags or config, auth, unsafe or incomplete plan or audit, failed
write, a target another run holds); 2 changes pending (`plan --detailed-exitcode`) or findings at or above
`audit --fail-on`; 3 unexpected error (a bug). Usage errors are 1, never 2.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from allowlist import __version__
from allowlist.cli.outcome import EXIT_ERROR, EXIT_UNEXPECTED
from allowlist.cli.start import SAVED_HELP, SAVED_WIDTH, TOP, leave
from allowlist.errors import TOKEN_ENV, AllowlistError

DEBUG_ENV = "ALLOWLIST_DEBUG"
HELP_SETTINGS: dict[str, Any] = {
    "rich_markup_mode": None,  # plain help: importing rich to draw boxes doubles start-up time
    "pretty_exceptions_show_locals": False,
}

# Each command lives in allowlist.cli.<name> as a function of that name, and is imported only when it runs
# or shows its own help: building all eight from their signatures cost about 30 ms of every start, --help
# included. The summaries are each docstring's first sentence (a test holds them equal), so the top-level
# help lists the commands without importing them.
COMMANDS: dict[str, str] = {
    "plan": "Show the firewall changes that would bring every target in step with its apps.",
    "apply": "Create the missing rules, then remove the stale ones allowlist owns.",
    "render": "Write the rules apply would make as Terraform, Bicep, ARM, az CLI, PowerShell, CSV or JSON.",
    "ips": "List every app (and slot) in scope with its outbound IPv4 ranges, and the apps that are not pinned.",
    "audit": "Judge every SQL, PostgreSQL, MySQL, Cosmos DB, Storage, Redis and Key Vault firewall in the "
    "subscriptions in scope (configured or not) against the apps' real addresses: Allow-Azure-services rules, "
    "open and wide ranges, stale rules, accounts that accept every address.",
    "init": "Write a commented allowlist.toml from what ARM shows: the subscriptions, every supported server and "
    "account, and the apps in each one's resource group as a first guess.",
    "demo": "Start the emulator with the demo estate, then run ips, plan, apply --yes, and plan again.",
    "emulator": "Run the local ARM emulator (HTTPS on 127.0.0.1) until Ctrl-C; prints the URL and the CA bundle.",
}


def load_command(name: str) -> TyperCommand:
    """The click command for one of COMMANDS, built from its function as `app.command()` would build it."""
    single = typer.Typer(add_completion=False, **HELP_SETTINGS)
    single.command(name=name)(getattr(importlib.import_module(f"allowlist.cli.{name}"), name))
    command = typer.main.get_command(single)
    assert isinstance(command, TyperCommand)
    return command


class _Commands(MutableMapping[str, Any]):  # Any: click's Command class is typer's private module
    """COMMANDS by name, each built on first use; listing the names (for help, completion or a "did you
    mean") builds none."""

    def __init__(self) -> None:
        self._built: dict[str, TyperCommand] = {}

    def __getitem__(self, name: str) -> TyperCommand:
        if name not in COMMANDS:
            raise KeyError(name)
        if name not in self._built:
            self._built[name] = load_command(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        raise TypeError("allowlist's commands are listed in COMMANDS")

    def __delitem__(self, name: str) -> None:
        raise TypeError("allowlist's commands are listed in COMMANDS")

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class _LazyGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands()

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # click's own listing, from a stand-in that carries only the summary
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [
            (name, TyperCommand(name, help=summary).get_short_help_str(limit)) for name, summary in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="allowlist",
    help="Keep database firewalls in step with the addresses Azure App Service apps really connect from.\n\n"
    "Reads the outbound addresses of every web app, function app and slot in scope (possibleOutboundIpAddresses, "
    "or the NAT gateway, firewall or environment its traffic really leaves through), and plans or applies "
    "the matching firewall rules on Azure SQL, PostgreSQL and MySQL flexible servers, Cosmos DB, Storage, "
    "Azure Cache for Redis and Key Vault. "
    "Rules it creates carry a prefix (default 'allowlist-'); "
    "it never touches any other rule.\n\n"
    "Exit codes: 0 ok; 1 error, unsafe or incomplete run; 2 changes pending (plan --detailed-exitcode) or "
    "findings (audit --fail-on); "
    "3 unexpected error.",
    no_args_is_help=True,
    cls=_LazyGroup,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    **HELP_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"allowlist {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Keep database firewalls in step with the addresses Azure App Service apps really connect from."""


def rendered_help() -> dict[str, str]:
    """Every help text as typer prints it on a terminal SAVED_WIDTH or more wide, by command (start.TOP
    for `allowlist --help`): what start.SAVED_HELP holds."""
    top = typer.main.get_command(app)
    parent = typer.Context(top, info_name=TOP, terminal_width=SAVED_WIDTH - 2)
    texts = {TOP: parent.get_help() + "\n"}
    for name in COMMANDS:
        command = load_command(name)
        texts[name] = typer.Context(command, info_name=name, parent=parent).get_help() + "\n"
    return texts


def save_help() -> None:
    """`make help`: write rendered_help() to start.SAVED_HELP, after any change to a help text."""
    os.makedirs(SAVED_HELP, exist_ok=True)
    for name, text in rendered_help().items():
        with open(os.path.join(SAVED_HELP, f"{name}.txt"), "w", encoding="utf-8") as out:
            out.write(text)


def run(argv: list[str] | None = None) -> int:
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="allowlist", standalone_mode=False)
    except typer.TyperException as exc:  # usage errors: 1, so they never read as "changes pending"
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help(), err=True)
            return EXIT_ERROR
        where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"error: {exc.format_message()}{where}", err=True)
        return EXIT_ERROR
    except typer.Abort:
        typer.echo("Aborted; nothing more was written.", err=True)
        return EXIT_ERROR
    except AllowlistError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        return 130
    except Exception as exc:  # a bug: one line, not a traceback, and a code of its own
        args = argv if argv is not None else sys.argv[1:]
        if os.environ.get(DEBUG_ENV) or "-v" in args or "--verbose" in args:
            import traceback  # only here: it costs every start a few ms

            traceback.print_exc()
        else:
            typer.echo(f"(run with -v or {DEBUG_ENV}=1 for the traceback)", err=True)
        typer.echo(f"error: unexpected {type(exc).__name__}: {_redact(str(exc))}", err=True)
        return EXIT_UNEXPECTED
    return result if isinstance(result, int) else 0


def _redact(text: str) -> str:
    """An unexpected error's text could hold anything: never let it carry the token."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.replace(token, "<redacted>") if token else first


def run_command() -> NoReturn:
    # A run allocates millions of small objects (apps, ranges, rules, JSON pages) and makes almost no
    # cycles (a 10,000-app plan or apply leaves under 1,000 objects for the collector). At the default
    # gen-0 threshold (700) it ran about 600 times in that plan, 0.5 s of its CPU; at 10,000, 40 times,
    # 65 ms; at 200,000, 4 ms, at the same peak memory. Only the process's own command line sets this.
    gc.set_threshold(200_000, 50, 10)
    leave(run())
