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


def reason(e: BaseException) -> str:
    """A caught library exception as one line for a message: its type and the first line of its text (a
    decoder's exception can carry the whole of ffmpeg's log)."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
