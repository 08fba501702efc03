"""Help, usage errors, bad input and the demo: clear messages, exit 1, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allowlist.cli.main import COMMANDS as SUMMARIES
from allowlist.cli.main import load_command, rendered_help
from allowlist.cli.start import COMPLETION_ENV, SAVED_HELP, SAVED_WIDTH, TOP, terminal_columns
from allowlist.emulator import Emulator
from allowlist.planfile import digest
from tests.cli_helpers import cli, writes
from tests.conftest import SQL1

Cap = pytest.CaptureFixture[str]
COMMANDS = ["plan", "apply", "render", "ips", "audit", "init", "demo", "emulator"]


def test_every_command_has_help_text(capsys: Cap) -> None:
    top = cli(capsys, "--help")
    assert top.code == 0
    for command in COMMANDS:
        assert command in top.out
        result = cli(capsys, command, "--help")
        assert result.code == 0 and f"Usage: allowlist {command}" in result.out
    assert list(SUMMARIES) == COMMANDS


def test_the_command_list_is_each_commands_own_summary() -> None:
    """The top-level help lists the commands from summaries kept beside their names; each must read as the
    command's own docstring would, at any width."""
    for name, summary in SUMMARIES.items():
        command = load_command(name)
        assert command.name == name and command.help
        assert summary == command.get_short_help_str(limit=10_000), name


def test_top_level_help_imports_no_command() -> None:
    code = (
        "import sys\n"
        "from allowlist.cli.main import run\n"
        "assert run(['--help']) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('allowlist.cli.') or m.split('.')[0] == 'azure'))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip().splitlines()[-1] == "['allowlist.cli.main', 'allowlist.cli.outcome', 'allowlist.cli.start']"


def test_the_saved_help_is_what_typer_prints(capsys: Cap, monkeypatch: pytest.MonkeyPatch) -> None:
    """help/ stands in for typer on every --help: each text must be typer's, byte for byte, at the width it
    is printed at. After changing a docstring, an option, COMMANDS or the app's text: `make help`."""
    monkeypatch.setenv("COLUMNS", str(SAVED_WIDTH))
    rendered = rendered_help()
    assert sorted(rendered) == sorted([TOP, *SUMMARIES]) == sorted(p.stem for p in Path(SAVED_HELP).iterdir())
    for name, text in rendered.items():
        assert cli(capsys, *([] if name == TOP else [name]), "--help").out == text == _saved(name), "run `make help`"
    assert cli(capsys).err == rendered[TOP]


def _saved(name: str) -> str:
    return Path(SAVED_HELP, f"{name}.txt").read_text()


def _start(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`allowlist ARGS` as a shell starts it, with the modules it imports listed on stderr."""
    environ = {k: v for k, v in os.environ.items() if k != COMPLETION_ENV} | env
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "allowlist", *args], env=environ,
                          capture_output=True, text=True, check=False)  # fmt: skip


def _imports_typer(done: subprocess.CompletedProcess[str]) -> bool:
    return any(line.rsplit("|", 1)[-1].strip() == "typer" for line in done.stderr.splitlines())


def test_help_starts_without_typer_where_its_text_is_the_same() -> None:
    for columns in ("80", "200"):
        shown = _start("--help", COLUMNS=columns)
        assert (shown.returncode, shown.stdout) == (0, _saved(TOP)) and not _imports_typer(shown)
        bare = _start(COLUMNS=columns)
        assert (bare.returncode, bare.stdout) == (1, "") and _saved(TOP) in bare.stderr and not _imports_typer(bare)
    for name in ("plan", "emulator"):
        shown = _start(name, "--help", COLUMNS="80")
        assert (shown.returncode, shown.stdout) == (0, _saved(name)) and not _imports_typer(shown)


def test_help_falls_back_to_typer_where_its_text_would_differ() -> None:
    narrow = _start("--help", COLUMNS="60")
    assert narrow.returncode == 0 and _imports_typer(narrow) and narrow.stdout != _saved(TOP)
    assert narrow.stdout.startswith("Usage: allowlist") and max(map(len, narrow.stdout.splitlines())) <= 58
    narrow_plan = _start("plan", "--help", COLUMNS="60")
    assert narrow_plan.stdout.startswith("Usage: allowlist plan") and narrow_plan.stdout != _saved("plan")
    assert _imports_typer(_start("--help", COLUMNS="80", **{COMPLETION_ENV: "bash_source"}))
    assert _imports_typer(_start("--version", COLUMNS="80")) and _imports_typer(_start("--help", "-x"))
    assert _imports_typer(_start("plan", "-q", "--help", COLUMNS="80"))


def test_only_a_command_name_reads_saved_help() -> None:
    """An unknown command, another spelling or a path is typer's to answer, never a file's."""
    for name in ("nope", "PLAN", "../help/plan", "./plan", "allowlist"):
        done = _start(name, "--help", COLUMNS="80")
        assert done.returncode == 1 and done.stdout == "" and _imports_typer(done), name
        assert done.stderr.splitlines()[-1].startswith("error: No such command"), name


def test_a_closed_standard_stream_is_no_traceback() -> None:
    """`allowlist --help >&-` (stdout closed before the start), as a shell runs it: typer writes nothing
    and exits; so does the saved help, and leave() has nothing to flush."""
    for args in (["--help"], ["plan", "--help"], ["--version"]):
        command = " ".join([shlex.quote(sys.executable), "-m", "allowlist", *args, ">&-"])
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)
        assert (done.returncode, done.stderr) == (0, ""), args


@pytest.mark.parametrize(("columns", "expected"), [("120", 120), ("79", 79), ("", 80), ("wide", 80), ("-3", 80)])
def test_terminal_columns_reads_as_shutil_does(monkeypatch: pytest.MonkeyPatch, columns: str, expected: int) -> None:
    monkeypatch.setenv("COLUMNS", columns)  # under pytest stdout is no terminal, so an unusable value means 80
    assert terminal_columns() == expected == shutil.get_terminal_size().columns


def test_version(capsys: Cap) -> None:
    from allowlist import __version__

    assert cli(capsys, "--version").out.strip() == f"allowlist {__version__}"


def test_usage_errors_exit_1_never_2(capsys: Cap) -> None:
    for args in (["plan", "--bogus"], ["plan", "-o", "yaml"], ["nope"], ["plan", "--rule-limit", "0"]):
        result = cli(capsys, *args)
        assert result.code == 1, args
        assert result.err.startswith("error: ") and len(result.err.strip().splitlines()) == 1, result.err


def test_no_arguments_shows_help(capsys: Cap) -> None:
    result = cli(capsys)
    assert result.code == 1 and "Usage: allowlist" in (result.out + result.err)


def test_nothing_to_sync(capsys: Cap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(capsys, "plan")
    assert result.code == 1 and "nothing to sync: give --target" in result.err


def test_malformed_config_names_the_file_and_key(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    (tmp_path / "allowlist.toml").write_text('[settings]\nmax_delete_percent = "lots"\n')
    result = cli(capsys, "apply", "--yes")
    assert result.code == 1
    assert result.err.strip() == "error: allowlist.toml: settings.max_delete_percent: has the wrong type (str)"
    assert writes(cli_env) == [] and cli_env.requests == []


def test_bad_flags_are_clear(cli_env: Emulator, capsys: Cap) -> None:
    assert "--tag 'team': expected KEY=VALUE" in cli(capsys, "plan", "-t", SQL1, "--tag", "team").err
    assert "--target: 'sql-one' is not a resource ID" in cli(capsys, "plan", "-t", "sql-one").err
    assert "the rule prefix cannot be empty" in cli(capsys, "plan", "-t", SQL1, "--prefix", " ").err
    result = cli(capsys, "plan", "-t", SQL1, "--arm-endpoint", "http://127.0.0.1:1")
    assert result.code == 1 and "must be an https:// URL" in result.err
    assert cli_env.requests == []


def test_saved_plan_errors(cli_env: Emulator, tmp_path: Path, capsys: Cap) -> None:
    assert "plan file not found" in cli(capsys, "apply", str(tmp_path / "none.json")).err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}))
    assert "not an allowlist plan" in cli(capsys, "apply", str(other)).err
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format": "allowlist-plan", "version": 99}))
    assert "plan version 99 is not supported" in cli(capsys, "apply", str(newer)).err
    damaged = tmp_path / "damaged.json"
    body = {"format": "allowlist-plan", "version": 2, "policy": {}}
    damaged.write_text(json.dumps({**body, "digest": digest(body)}))
    assert "the plan is damaged" in cli(capsys, "apply", str(damaged)).err
    damaged.write_text(json.dumps({**body, "digest": "sha256:0"}))
    assert "changed after it was saved" in cli(capsys, "apply", str(damaged)).err
    assert "carries its own scope" in cli(capsys, "apply", str(damaged), "-t", SQL1).err
    assert writes(cli_env) == []


def test_demo_runs_the_whole_job(capsys: Cap) -> None:
    result = cli(capsys, "demo")
    assert result.code == 0, result.err
    assert "Plan: 36 to add, 2 to remove." in result.out
    assert "Apply complete: 36 added, 2 removed." in result.out
    assert "left alone: office\n" in result.out  # shop-api's own access restriction for the office
    assert "left alone: 198.51.100.20" in result.out  # someone's Cosmos DB entry, kept and never claimed
    assert result.out.rstrip().endswith("No changes. The firewalls match the apps' outbound addresses.")
    assert "NOT PINNED" in result.out


def test_the_installed_command_runs_as_a_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "allowlist", "plan", "--target", "x"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: --target: 'x' is not a resource ID") and "Traceback" not in result.stderr


def test_pipelines_get_one_line_per_phase_and_json_gets_none(cli_env: Emulator, capsys: Cap) -> None:
    result = cli(capsys, "apply", "--yes", "-t", SQL1, "-s", "11111111-1111-4111-8111-111111111111")
    assert result.code == 0, result.err
    for phase in ("Listing apps: 1/1", "Reading firewalls: 1/1", "Writing rules: 3/3"):
        assert phase in result.err, result.err
    quiet = cli(capsys, "plan", "-t", SQL1, "-o", "json")
    assert "Listing apps" not in quiet.err and "Reading firewalls" not in quiet.err
    assert result.err.count("Reading sites and slots: 2/2") == 1


@pytest.mark.parametrize("total_known", ["before the last step", "after the last step", "both"])
def test_a_phase_whose_total_comes_late_gets_one_line(total_known: str, capsys: Cap) -> None:
    """Slot lists start while sites are still listed: their total is known only when the sites are."""
    from allowlist.cli.progress import PhaseLines

    lines = PhaseLines()
    lines.step("resource groups", 1, 0)
    if total_known != "after the last step":
        lines.step("resource groups", 0, 2)
    lines.step("resource groups", 1, 2 if total_known != "after the last step" else 0)
    if total_known != "before the last step":
        lines.step("resource groups", 0, 2)
    assert capsys.readouterr().err.count("Reading sites and slots: 2/2") == 1


def test_the_live_display_runs(capsys: Cap) -> None:
    from allowlist.cli.progress import LiveBars

    bars = LiveBars()
    for _ in range(3):
        bars.step("writes", 1, 3)
    bars.close()
    assert "Writing rules" in capsys.readouterr().err


def test_shell_completion_installs_and_lists_the_commands(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SHELL": "/bin/bash"}
    installed = subprocess.run([sys.executable, "-m", "allowlist", "--install-completion", "bash"], env=env,
                               capture_output=True, text=True, check=True)  # fmt: skip
    assert "completion installed" in installed.stdout
    script = tmp_path / ".bash_completions" / "allowlist.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    # What bash does on `allowlist <TAB>` and `allowlist audit --fa<TAB>`, through the installed script.
    complete = (
        'source "$1"; COMP_WORDS=($2); COMP_CWORD=$3; _allowlist_completion allowlist; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    listed = subprocess.run(["bash", "-c", complete, "-", str(script), "allowlist ''", "1"], env=env,
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert listed == COMMANDS
    flags = subprocess.run(["bash", "-c", complete, "-", str(script), "allowlist audit --fa", "2"], env=env,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert flags == ["--fail-on"]


def test_the_command_line_collects_garbage_less_often() -> None:
    """A 10,000-app plan ran the collector about 600 times at Python's default threshold (700)."""
    probe = (
        "import gc, sys\n"
        "from allowlist.cli import main\n"
        "main.run = lambda: print(gc.get_threshold()[0]) or 0\n"
        "main.run_command()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 100_000


def test_the_command_line_exits_with_its_code_its_output_flushed_and_its_exit_handlers_run() -> None:
    """entry() leaves without freeing the heap object by object, and loses nothing by it."""
    probe = (
        "import atexit, sys\n"
        "from allowlist.cli import main\n"
        "atexit.register(lambda: sys.stdout.write('handler ran\\n'))\n"
        "main.run = lambda: (sys.stdout.write('x' * 1_000_000 + '\\n'), sys.stderr.write('note\\n'), 2)[2]\n"
        "main.run_command()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stdout == "x" * 1_000_000 + "\nhandler ran\n" and done.stderr == "note\n"
