"""The `allowlist` command's entry point, kept free of typer.

Importing typer is about 55 ms, over half of a start. Help (`allowlist --help`, a bare `allowlist`,
`allowlist COMMAND --help`) is asked most often and its text changes only with the code, so it is saved in
help/ as typer renders it at click's widest (78 columns, which click uses on any terminal 80 or more wide)
and printed from there; everything else goes on to allowlist.cli.main. A test holds each saved text equal
to what typer renders; `make help` writes them anew.
"""

from __future__ import annotations

import atexit
import os
import sys

from allowlist.cli.outcome import EXIT_ERROR, EXIT_OK

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs a start 5 ms
if TYPE_CHECKING:
    from typing import NoReturn

SAVED_HELP = os.path.join(os.path.dirname(__file__), "help")  # not pathlib: another 8 ms to import
TOP = "allowlist"  # help/allowlist.txt is the top-level help; help/plan.txt is `allowlist plan --help`
SAVED_WIDTH = 80  # click wraps help at min(columns, 80) - 2
COMPLETION_ENV = f"_{TOP.upper()}_COMPLETE"  # how typer's shell completion asks (_PROG_COMPLETE): typer answers


def saved_help(command: str) -> str | None:
    """The saved help of `command` (TOP, or one of allowlist's commands) where typer would print the same
    text, else None."""
    if COMPLETION_ENV in os.environ or terminal_columns() < SAVED_WIDTH:
        return None
    if not (command.isalpha() and command.islower()):  # a command's name: no path, no other spelling
        return None
    try:
        with open(os.path.join(SAVED_HELP, f"{command}.txt"), encoding="utf-8") as saved:
            return saved.read()
    except OSError:  # not a command (typer says so), or an install without it (typer's speed)
        return None


def terminal_columns() -> int:
    """shutil.get_terminal_size().columns without importing shutil (4 ms): COLUMNS, else stdout's
    terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def entry() -> None:
    args = sys.argv[1:]
    # a bare `allowlist` is a usage error that shows the help: on stderr, exit 1, as typer has it
    out = sys.stdout if args else sys.stderr
    asked = help_asked(args)
    if asked is not None and out is not None and (text := saved_help(asked)) is not None:
        out.write(text)
        leave(EXIT_OK if args else EXIT_ERROR)
    from allowlist.cli.main import run_command

    run_command()


def help_asked(args: list[str]) -> str | None:
    """Whose help a command line asks for alone (TOP or a command's name), else None."""
    if args in ([], ["--help"]):
        return TOP
    if len(args) == 2 and args[1] == "--help" and args[0] != TOP:
        return args[0]
    return None


def leave(code: int) -> NoReturn:
    """Exit as sys.exit would, without freeing the heap object by object first (about 0.2 s of CPU after a
    10,000-app plan): the exit handlers run, the standard streams are flushed, the OS takes the rest."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # closed before the start (`>&-`): nothing was written to it
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): what was written is all that can be
            code = code or EXIT_ERROR
    os._exit(code)
