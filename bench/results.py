"""What every benchmark does with its figures: print them, and append them to the results file if asked."""

from __future__ import annotations

from pathlib import Path


def publish(text: str, record: Path | None) -> None:
    print(text)
    if record:
        with record.open("a", encoding="utf-8") as out:
            out.write("\n" + text)
