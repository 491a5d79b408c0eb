"""Errors that speak to the user.

A `UserError` is something the user can fix: the CLI prints its message (no traceback) and
exits non-zero. Messages name the object, the field and what to do.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by input or environment the user controls."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
