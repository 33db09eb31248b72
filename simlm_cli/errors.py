"""User-facing errors: one line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path


class SimlmError(Exception):
    """An error caused by the user's input or environment, printed as one line."""

    exit_code = 2


class InputError(SimlmError):
    """Bad content in an input file, located by file, line and (optionally) field."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        where = self.path if line is None else f"{self.path}:{line}"
        what = message if field is None else f"field '{field}': {message}"
        super().__init__(f"{where}: {what}")


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none): errors stay one line."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
