"""The thin typer layer: parse flags, call the core, print, return an exit code."""
