"""The `allowlist` command: every expected error becomes one line on stderr and an exit code.

Exit codes: 0 success; 1 error (bad flags or config, auth, unsafe or incomplete plan or audit, failed
write, a target another run holds); 2 changes pending (`plan --detailed-exitcode`) or findings at or above
`audit --fail-on`; 3 unexpected error (a bug). Usage errors are 1, never 2.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import traceback
from typing import Annotated

import typer

from allowlist import __version__
from allowlist.cli.apply import apply
from allowlist.cli.audit import audit
from allowlist.cli.demo import demo
from allowlist.cli.emulator import emulator
from allowlist.cli.init import init
from allowlist.cli.ips import ips
from allowlist.cli.outcome import EXIT_ERROR, EXIT_UNEXPECTED
from allowlist.cli.plan import plan
from allowlist.cli.render import render
from allowlist.errors import TOKEN_ENV, AllowlistError

DEBUG_ENV = "ALLOWLIST_DEBUG"

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
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain help: importing rich to draw boxes doubles start-up time
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
)
app.command(no_args_is_help=False)(plan)
app.command()(apply)
app.command()(render)
app.command()(ips)
app.command()(audit)
app.command()(init)
app.command()(demo)
app.command()(emulator)


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


def entry() -> None:
    # A run allocates millions of small objects (apps, ranges, rules, JSON pages) and frees few: at the
    # default gen-0 threshold (700) the collector ran about 600 times in a 10,000-app plan, 0.5 s of its
    # CPU; at 10,000 it runs about 27 times, 0.15 s. Only the process's own command line sets this.
    gc.set_threshold(10_000, 10, 10)
    _exit(run())


def _exit(code: int) -> None:
    """Exit as sys.exit would, without freeing the heap object by object first (about 0.2 s of CPU after a
    10,000-app plan): the exit handlers run, the standard streams are flushed, the OS takes the rest."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): what was written is all that can be
            code = code or EXIT_ERROR
    os._exit(code)
