"""Start-up benchmark: `allowlist --help` and `allowlist plan --help` as processes, as a shell runs them.

Every command pays this before it does anything, so it is measured on its own: the median of N runs each,
and which heavy packages the start-up imports (none of the Azure SDK, pydantic or rich should be). It is
measured as `pip install .` leaves allowlist (a throwaway venv holding a regular install, its dependencies
taken from this one), and as this checkout's editable install, whose import hook every start also loads.

    python bench/startup.py --runs 15 --record bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import platform
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import byte_compile, publish

BIN = Path(sys.executable).with_name("allowlist")
ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["plan", "--help"], ["audit", "--help"], ["--version"])  # --version: through typer
HEAVY = ("azure", "pydantic", "rich", "requests", "jinja2")


def median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def regular_install(where: Path) -> Path:
    """A venv at `where` holding allowlist as `pip install .` leaves it (byte-compiled, no import hook);
    its dependencies are this venv's, reached by a plain path line (no .pth file of this venv runs)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    packages = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    Path(packages, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(ROOT)], check=True, capture_output=True)
    return where / "bin" / "allowlist"


def heavy_imports(args: list[str]) -> list[str]:
    """Top-level packages among HEAVY that the command imports (from `python -X importtime`)."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "allowlist", *args], capture_output=True, text=True)
    found = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in run.stderr.splitlines() if "|" in line}
    return sorted(found & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--record", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args()
    byte_compile()
    with tempfile.TemporaryDirectory() as tmp:
        installed = regular_install(Path(tmp) / "venv")
        rows = [
            (" ".join(c), median_ms([str(installed), *c], args.runs), median_ms([str(BIN), *c], args.runs),
             heavy_imports(c))
            for c in COMMANDS
        ]  # fmt: skip
        # The interpreter's own start, that day (no import hook): start-up figures swing with the machine
        # from day to day, so they are read against it.
        floor = median_ms([str(installed.with_name("python")), "-c", "pass"], args.runs)
    lines = [
        f"### {time.strftime('%Y-%m-%d')} — start-up",
        "",
        f"Median of {args.runs} runs each, as processes. Python {platform.python_version()}, {platform.machine()}.",
        "",
        "| command | median, `pip install .` | median, editable install | heavy packages imported |",
        "|---|---:|---:|---|",
        *(f"| `allowlist {c}` | {ms:.0f} ms | {edit:.0f} ms | {', '.join(h) or 'none'} |" for c, ms, edit, h in rows),
        f"| `python -c pass` (the interpreter alone) | {floor:.0f} ms | | |",
    ]
    publish("\n".join(lines) + "\n", args.record)


if __name__ == "__main__":
    main()
