"""`allowlist emulator` as a user runs it: a process that prints its URL and CA, answering curl."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_emulator_command_serves_the_demo_estate_to_curl(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "allowlist", "emulator", "--ca-dir", str(tmp_path), "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        wait_until(lambda: bool(lines.append(process.stdout.readline()) or "CA bundle" in lines[-1]), timeout=20)
        url = next(line.split()[-1] for line in lines if "listening on" in line)
        ca = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("CA bundle"))
        assert url.startswith("https://127.0.0.1:") and Path(ca).parent == tmp_path
        answer = subprocess.run(
            [
                "curl",
                "-sS",
                "--cacert",
                ca,
                "-H",
                "Authorization: Bearer demo",
                f"{url}/subscriptions?api-version=2022-12-01",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        body = json.loads(answer.stdout)
        assert [s["displayName"] for s in body["value"]] == ["Contoso Production", "Contoso Analytics"]
        unauthenticated = subprocess.run(
            ["curl", "-sS", "--cacert", ca, f"{url}/subscriptions?api-version=2022-12-01"],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
        assert json.loads(unauthenticated.stdout)["error"]["code"] == "AuthenticationFailed"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_emulator_command_rejects_a_bad_estate(tmp_path: Path) -> None:
    bad = tmp_path / "estate.toml"
    bad.write_text("[[subscriptions]]\nname = 'no id'\n")
    result = subprocess.run(
        [sys.executable, "-m", "allowlist", "emulator", "--estate", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"{bad}: subscriptions[0]: 'id' is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_cleans_up_like_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "allowlist", "emulator"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    wait_until(lambda: bool(lines.append(process.stdout.readline()) or "CA bundle" in lines[-1]), timeout=20)
    ca = Path(next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("CA bundle")))
    assert ca.exists()
    process.terminate()
    assert process.wait(timeout=10) == 0
    assert not ca.parent.exists(), "the temporary CA folder is removed on SIGTERM"


def test_the_demos_last_hint_works_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`allowlist demo` ends with: run `allowlist emulator`, export the three variables it prints, then
    `allowlist plan -c ...`. Done exactly so, that plan shows the demo's changes."""
    from tests.cli_helpers import cli

    hint = cli(capsys, "demo").err.strip().splitlines()[-1]
    command = re.search(r"then `(allowlist plan -c [^`]+)`", hint)
    assert "run `allowlist emulator`, export the three variables it prints" in hint and command is not None
    unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "allowlist", "emulator"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=unbuffered)  # fmt: skip
    try:
        assert process.stdout is not None
        lines: list[str] = []
        wait_until(lambda: bool(lines.append(process.stdout.readline()) or "ACCESS_TOKEN" in lines[-1]), timeout=20)
        exports = [line.split("#")[0].split()[1] for line in lines if line.strip().startswith("export ")]
        assert len(exports) == 3
        env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
        env |= dict(e.split("=", 1) for e in exports)
        words = command.group(1).split()  # the installed `allowlist`, as a user's shell finds it
        planned = subprocess.run([str(Path(sys.executable).parent / words[0]), *words[1:]], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert planned.returncode == 0, planned.stderr
        assert "Plan: 36 to add, 2 to remove." in planned.stdout
    finally:
        process.terminate()
        process.wait(timeout=10)
