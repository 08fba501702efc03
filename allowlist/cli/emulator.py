"""`allowlist emulator`: serve an estate as a local ARM endpoint until interrupted."""

from __future__ import annotations

import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from allowlist.cli import options as o
from allowlist.errors import ConfigError


def emulator(
    estate: Annotated[
        Path | None,
        typer.Option("--estate", "-e", help="Estate file (TOML or JSON). Default: the built-in demo estate."),
    ] = None,
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port; 0 picks a free one.")] = 0,
    latency_ms: Annotated[float, typer.Option("--latency-ms", min=0, help="Added to every answer.")] = 0.0,
    faults: Annotated[
        str,
        typer.Option(
            "--faults",
            help="e.g. 'error-rate=0.05,drop-rate=0.01,throttle=off,reads=250/25,writes=200/10,"
            "forbid=/subscriptions/ID'.",
        ),
    ] = "",
    seed: Annotated[int, typer.Option("--seed", help="Seed for the random faults.")] = 0,
    page_size: Annotated[
        int | None, typer.Option("--page-size", min=1, help="Items per list page (default: the estate's).")
    ] = None,
    generate: Annotated[
        str | None,
        typer.Option(
            "--generate",
            metavar="SPEC",
            help="Serve a generated estate instead, for benchmarks: "
            "'subscriptions=100,apps=100,servers=300,subnets=60,nat=0.1,seed=1'.",
        ),
    ] = None,
    ca_dir: Annotated[
        Path | None, typer.Option("--ca-dir", help="Where to write the CA bundle (default: a temporary folder).")
    ] = None,
) -> int:
    """Run the local ARM emulator (HTTPS on 127.0.0.1) until Ctrl-C; prints the URL and the CA bundle."""
    from allowlist.emulator import Emulator, EstateError, FaultConfig, FaultSpecError, demo_estate_path, load_estate
    from allowlist.emulator.estate import Estate
    from allowlist.emulator.generate import generate_estate, parse_spec

    try:
        if generate is not None:
            spec = {k: (v if k in ("nat_share", "slot_share") else int(v)) for k, v in parse_spec(generate).items()}
            loaded = Estate(generate_estate(**spec), 100)  # type: ignore[arg-type]
        else:
            loaded = load_estate(estate or demo_estate_path())
        config = FaultConfig.parse(faults, seed=seed)
    except (EstateError, FaultSpecError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    if latency_ms:
        config = replace(config, latency_ms=latency_ms)
    server = Emulator(loaded.state, port=port, page_size=page_size or loaded.page_size, faults=config, ca_dir=ca_dir)
    # SIGTERM (a pipeline stopping the job, `kill`) cleans up like Ctrl-C: the CA folder goes too.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
    try:
        o.emit(
            f"ARM emulator listening on {server.base_url}\n"
            f"CA bundle: {server.ca_path}\n\n"
            "Point allowlist (or az rest / curl) at it:\n"
            f"  export ALLOWLIST_ARM_ENDPOINT={server.base_url}\n"
            f"  export REQUESTS_CA_BUNDLE={server.ca_path}\n"
            "  export ALLOWLIST_ACCESS_TOKEN=emulator   # any bearer token is accepted\n\n"
            "Press Ctrl-C to stop.\n"
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        o.note("Stopped.")
    finally:
        server.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
