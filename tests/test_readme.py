"""Every command in the README's ```bash blocks runs as written, in order, on a fresh folder: the first-hour
emulator in the background (as in a second terminal), the rest in one shell so exports carry over, with a
terminal on stdin so `allowlist apply` can ask (the test answers y). A block is left out only where the line
before it says why (`<!-- readme-test: skip (...) -->`)."""

from __future__ import annotations

import os
import pty
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<marker>[^>]*) -->\n)?```bash\n(?P<body>.*?)```", re.S)
SUB, SUB2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
MAY_EXIT_2 = re.compile(r"^allowlist (audit|plan .*--detailed-exitcode)")  # documented: findings / changes


def commands(body: str) -> list[str]:
    """Logical commands: continuation lines joined, comment-only lines dropped."""
    joined = body.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    blocks = list(BLOCK.finditer(README.read_text()))
    skipped = [b for b in blocks if (b["marker"] or "").startswith("skip")]
    assert all(re.match(r"skip \(.+\)$", b["marker"]) for b in skipped), "a skip must say why"
    background = [b for b in blocks if (b["marker"] or "").startswith("background")]
    foreground = [b for b in blocks if not b["marker"]]
    assert len(background) == 1 and len(foreground) >= 5
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/bash",
           "LANG": "C.UTF-8", "SUB": SUB, "SUB2": SUB2}  # fmt: skip
    port = _free_port()
    server_cmd = commands(background[0]["body"])[0].replace("8443", str(port))
    server = subprocess.Popen(["bash", "-c", server_cmd], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        _wait_for(port)
        script, expected = ["set -u"], []
        for i, command in enumerate(c for b in foreground for c in commands(b["body"])):
            command = command.replace("8443", str(port))
            script.append(f'{command}\necho "{i} $?" >> "$RESULTS"')
            expected.append((command, {0, 2} if MAY_EXIT_2.match(command) else {0}))
        (tmp_path / "readme.sh").write_text("\n".join(script) + "\n")
        leader, follower = pty.openpty()  # a terminal: `allowlist apply` asks before it writes
        os.write(leader, b"y\n")
        run = subprocess.run(["bash", "readme.sh"], cwd=tmp_path, env={**env, "RESULTS": str(tmp_path / "rc")},
                             stdin=follower, capture_output=True, text=True, timeout=600)  # fmt: skip
        os.close(follower)
        os.close(leader)
    finally:
        server.terminate()
        server.wait(timeout=10)
    codes = [int(line.split()[1]) for line in (tmp_path / "rc").read_text().splitlines()]
    assert len(codes) == len(expected), run.stderr[-2000:]
    failed = [(cmd, code) for (cmd, allowed), code in zip(expected, codes, strict=True) if code not in allowed]
    assert not failed, (failed, run.stdout[-3000:], run.stderr[-3000:])
    assert "Traceback" not in run.stderr
    # What the first hour leaves behind: a drafted config, a plan, the rendered files, completion.
    assert (tmp_path / "allowlist.toml").read_text().startswith("# allowlist.toml drafted by `allowlist init`")
    assert (tmp_path / "plan.json").exists() and (tmp_path / "tf" / "allowlist.tf").exists()
    assert (tmp_path / ".bash_completions" / "allowlist.sh").exists()
    assert "Apply complete" in run.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the README's emulator did not listen on {port}")
