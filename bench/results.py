"""What every benchmark does with its figures: print them, and append them to the results file if asked."""

from __future__ import annotations

from pathlib import Path


def publish(text: str, record: Path | None) -> None:
    print(text)
    if record:
        with record.open("a", encoding="utf-8") as out:
            out.write("\n" + text)


def byte_compile() -> None:
    """Compile allowlist's modules as pip leaves an install: otherwise a checkout that never wrote its
    bytecode (PYTHONDONTWRITEBYTECODE, a fresh worktree) compiles about 85 modules in every CLI run, about
    0.14 s of CPU a user never pays."""
    import compileall

    import allowlist

    compileall.compile_dir(Path(allowlist.__file__).parent, quiet=1)
