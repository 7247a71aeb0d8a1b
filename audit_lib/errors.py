"""One exception family. Messages say what is wrong, where, and how to fix it.

The CLI turns each class into a short message and its exit code (never a traceback).
"""
from __future__ import annotations

__all__ = ["AuditError", "ParamsError", "InputDataError", "RunError", "EXIT_CODES"]


class AuditError(Exception):
    """Base class for every error the workbook reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, problems: list | None = None):
        super().__init__(message)
        self.message = message
        #: structured problems (e.g. validation issues) when there are several
        self.problems = list(problems or [])

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class ParamsError(AuditError):
    """The params file is missing, unreadable, or has invalid settings."""

    exit_code = 2


class InputDataError(AuditError):
    """A client export is missing, unreadable, or fails validation."""

    exit_code = 3


class RunError(AuditError):
    """A step of the audit run failed (e.g. a notebook raised)."""

    exit_code = 4


#: documented exit codes (README "Exit codes")
EXIT_CODES = {
    0: "success",
    1: "unexpected internal error (please report it)",
    ParamsError.exit_code: "invalid params file",
    InputDataError.exit_code: "invalid or unreadable input data",
    RunError.exit_code: "the audit run failed (a notebook or step raised); previous report kept",
    130: "interrupted (Ctrl-C); nothing was published",
}
