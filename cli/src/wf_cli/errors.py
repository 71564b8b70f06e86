"""Errors the `wf` command reports to the user, each with the exit code it ends with.

CliError           something went wrong; the message says what and what to do (exit 1)
├── UsageError     the command line cannot work as given, e.g. an ambiguous task key (exit 2)
├── Unreachable    nothing answers at the board API URL (exit 1)
└── ApiError       the board API refused the request; carries its HTTP status and error code (exit 1)
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    exit_code = EXIT_USAGE


class Unreachable(CliError):
    pass


class ApiError(CliError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
