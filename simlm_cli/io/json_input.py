"""JSON from a user's file, with a nesting limit: every JSON and JSONL reader parses through `loads`.

Python's parser recurses once per nesting level, so `[[[[...` 10,000 deep raises RecursionError (a traceback) from
whichever reader meets it first. No simlm input nests more than a few levels; deeper is refused before parsing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from simlm_cli.errors import InputError

MAX_DEPTH = 100
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # brackets inside strings do not nest
_BRACKET = re.compile(r"[\[\]{}]")


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether `text` (JSON, perhaps malformed) nests arrays and objects more than `limit` levels deep."""
    if text.count("[") + text.count("{") <= limit:  # the common case costs two scans in C
        return False
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def loads(text: str | bytes, path: str | Path, line: int | None = None, **kwargs: Any) -> Any:
    """`json.loads(text, **kwargs)`, after refusing nesting deeper than MAX_DEPTH as an `InputError` naming
    `path` (and `line`). Malformed JSON still raises `json.JSONDecodeError`, which each reader words itself."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    if too_deep(text):
        raise InputError(path, f"JSON nested deeper than {MAX_DEPTH} levels; not a simlm input", line=line)
    return json.loads(text, **kwargs)


def read_json(path: str | Path, **kwargs: Any) -> Any:
    """A whole JSON file (UTF-8), through `loads`; OSError and malformed JSON propagate to the caller."""
    return loads(Path(path).read_text(encoding="utf-8"), path, **kwargs)
