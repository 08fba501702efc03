"""What a person or a pipeline log sees while a run works: a live display on a terminal, one summary
line per phase in a pipeline, nothing with -q or --output json. The core only calls `step`."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import typer

from allowlist.model import Progress

LABELS = {
    "subscriptions": "Listing apps",
    "resource groups": "Reading sites and slots",
    "firewalls": "Reading firewalls",
    "writes": "Writing rules",
}


class PhaseLines:
    """Pipelines: one line when each phase completes, with its count and duration."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._said: set[str] = set()

    def step(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            self._started.setdefault(phase, time.monotonic())
            count = self._done[phase] = self._done.get(phase, 0) + done
            if total and count == total and phase not in self._said:  # a total may become known late
                self._said.add(phase)
                took = time.monotonic() - self._started[phase]
                typer.echo(f"{LABELS.get(phase, phase)}: {count}/{total} in {took:.1f} s", err=True)


class LiveBars:
    """A terminal: one bar per phase with its count, rate and time left (rich, on stderr)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bars
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{task.speed or 0:.0f}/s")

        self._bars = Bars(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(),
            console=Console(stderr=True),
        )  # fmt: skip
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._bars.start()

    def step(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            task = self._tasks.get(phase)
            if task is None:
                task = self._tasks[phase] = self._bars.add_task(LABELS.get(phase, phase), total=total or None)
            self._bars.update(task, advance=done, total=total or None)

    def close(self) -> None:
        self._bars.stop()


def make_progress(quiet: bool, machine_output: bool) -> Progress | None:
    if quiet or machine_output:
        return None
    return LiveBars() if sys.stderr.isatty() else PhaseLines()


def close(progress: Progress | None) -> None:
    if isinstance(progress, LiveBars):
        progress.close()
