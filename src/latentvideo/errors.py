"""One error type for everything a user can get wrong.

The CLI turns a `LatentVideoError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class LatentVideoError(Exception):
    """A problem with the user's input, with an optional hint on how to fix it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"
