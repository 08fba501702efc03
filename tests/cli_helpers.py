"""Running the CLI in-process, as a user would from a shell, and checking it never leaks the token."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from allowlist.cli.main import run
from allowlist.emulator import Emulator

TOKEN = "secret-pipeline-token"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err, "the access token must never be printed"
    assert "Traceback" not in err
    return Result(code, out, err)


def write_config(path: Path, blocks: list[dict[str, Any]], **settings: Any) -> Path:
    """A config for tests: no back-off between retries, plus whatever the test sets."""
    lines = ["[settings]", "retry_backoff = 0"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    for block in blocks:
        lines.append("[[sync]]")
        for key, value in block.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def rules(emu: Emulator, server: str) -> dict[str, tuple[str, str]]:
    return {r["name"]: (r["start"], r["end"]) for r in emu.state.snapshot()[server]}


def writes(emu: Emulator) -> list[tuple[str, str]]:
    """Writes to firewalls (a run's lease tag is not one)."""
    return [
        (r.method, r.path.rsplit("/", 1)[-1])
        for r in emu.requests
        if r.method in ("PUT", "DELETE", "PATCH") and "/microsoft.resources/tags/" not in r.path.lower()
    ]


def any_writes(emu: Emulator) -> list[str]:
    """Every request that is not a read, leases included."""
    return [f"{r.method} {r.path}" for r in emu.requests if r.method != "GET"]
