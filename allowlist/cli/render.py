"""`allowlist render`: the desired rules as infrastructure code, from the same plan as `plan`."""

from __future__ import annotations

import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from allowlist.cli import options as o
from allowlist.errors import ConfigError

FORMAT_HELP = "terraform, bicep, arm, azcli, powershell, csv or json."


@o.with_common_options()
def render(
    common: o.Common,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help=FORMAT_HELP)],
    out: Annotated[
        str, typer.Option("--out", metavar="DIR|-", help="Folder to write into, or - for stdout (one file only).")
    ] = "-",
    templates: Annotated[
        Path | None,
        typer.Option("--templates", metavar="DIR", help="Your own templates: DIR/FORMAT/*.j2, same variables."),
    ] = None,
    with_imports: Annotated[
        bool, typer.Option("--with-imports", help="terraform: import blocks for managed rules that already exist.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow more deletes than max_delete_percent, as apply --force does.")
    ] = False,
    timestamp: Annotated[
        bool, typer.Option("--timestamp", help="Put the time in the headers (off, so output diffs cleanly).")
    ] = False,
) -> int:
    """Write the rules apply would make as Terraform, Bicep, ARM, az CLI, PowerShell, CSV or JSON."""
    from allowlist.render import RenderOptions, write_files
    from allowlist.render import render as render_files

    plan, scope, _ = o.plan_for(common)
    options = RenderOptions(
        fmt=fmt,
        templates=templates,
        command=f"allowlist render --format {shlex.quote(fmt)}" + (" --with-imports" if with_imports else ""),
        scope=_describe_scope(common, scope.blocks),
        with_imports=with_imports,
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if timestamp else None,
        force=force,
    )
    files = render_files(plan, options)
    if out == "-":
        if len(files) != 1:
            raise ConfigError(f"{fmt} writes {len(files)} files here (one per target): give --out DIR")
        sys.stdout.write(next(iter(files.values())))
        return 0
    for path in write_files(files, Path(out)):
        common.note(f"wrote {path}")
    return 0


def _describe_scope(common: o.Common, blocks: tuple[object, ...]) -> str:
    """Which config or flags chose the apps: stable text, no absolute paths, for file headers."""
    if common.selects:
        return "command-line flags"
    names = ", ".join(getattr(b, "name", "") for b in blocks)
    config = common.config or o.DEFAULT_CONFIG
    return f"{config} (sync: {names})"
