"""Exit codes, documented in the README and in `allowlist --help`."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # bad input, auth, an unsafe or incomplete plan, a failed write, a target another run holds
EXIT_CHANGES = 2  # plan --detailed-exitcode: changes pending; audit: findings at or above --fail-on
EXIT_UNEXPECTED = 3  # a bug: one line, and the traceback with -v or ALLOWLIST_DEBUG=1
