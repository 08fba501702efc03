"""Start-up benchmark: `allowlist --help` and `allowlist plan --help` as processes, as a shell runs them.

Every command pays this before it does anything, so it is measured on its own: the median of N runs each,
and which heavy packages the start-up imports (none of the Azure SDK, pydantic or rich should be).

    python bench/startup.py --runs 15 --record bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results import byte_compile, publish

BIN = Path(sys.executable).with_name("allowlist")
COMMANDS = (["--help"], ["plan", "--help"], ["audit", "--help"])
HEAVY = ("azure", "pydantic", "rich", "requests", "jinja2")


def median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


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
    rows = [(" ".join(c), median_ms([str(BIN), *c], args.runs), heavy_imports(c)) for c in COMMANDS]
    # The interpreter's own start, that day: start-up figures swing with the machine from day to day, so
    # they are read against it.
    floor = median_ms([sys.executable, "-c", "pass"], args.runs)
    lines = [
        f"### {time.strftime('%Y-%m-%d')} — start-up",
        "",
        f"Median of {args.runs} runs each, as processes. Python {platform.python_version()}, {platform.machine()}.",
        "",
        "| command | median | heavy packages imported |",
        "|---|---:|---|",
        *(f"| `allowlist {c}` | {ms:.0f} ms | {', '.join(h) or 'none'} |" for c, ms, h in rows),
        f"| `python -c pass` (the interpreter alone) | {floor:.0f} ms | |",
    ]
    publish("\n".join(lines) + "\n", args.record)


if __name__ == "__main__":
    main()
