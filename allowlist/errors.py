"""One hierarchy for every expected failure; the CLI maps it to a message and an exit code."""

from __future__ import annotations

TOKEN_ENV = "ALLOWLIST_ACCESS_TOKEN"  # a pre-issued ARM token; never printed


class AllowlistError(Exception):
    """An expected failure: shown as one line, never with a traceback."""

    exit_code = 1


class ConfigError(AllowlistError):
    """The config file or the flags are wrong; the message names the file, key and problem."""


class AuthError(AllowlistError):
    """No credential, or ARM refused it (401)."""


class PlanFileError(AllowlistError):
    """A saved plan that cannot be read, or that no longer matches the firewalls it was made for."""


class UnsafePlanError(AllowlistError):
    """The plan breaks a safety rule; nothing was written."""


class Incomplete(AllowlistError):
    """The run did what was safe but could not finish the job (discovery gaps, failed writes)."""
