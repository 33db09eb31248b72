"""Passage corpora: BEIR `corpus.jsonl`, MS MARCO / DPR TSV and Pyserini JSONL, streamed."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from simlm_cli.errors import InputError
from simlm_cli.io import json_input
from simlm_cli.io.files import first_content_line, iter_lines


class CorpusFormat(str, Enum):
    auto = "auto"
    beir = "beir"  # {"_id", "title", "text"}
    msmarco = "msmarco"  # pid \t text, pid \t title \t text, or DPR's id \t text \t title with its header
    pyserini = "pyserini"  # {"id", "contents"} (optionally "title")


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    title: str
    text: str
    line: int  # where it came from, for error messages

    def joined(self) -> str:
        """Title and text as one string, the way MTEB and Anserini's flat BEIR indexes join them."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


def detect_corpus_format(path: str | Path) -> CorpusFormat:
    name = str(path).removesuffix(".gz")
    if name.endswith((".tsv", ".txt")):
        return CorpusFormat.msmarco
    first = first_content_line(path)
    if first is None:
        raise InputError(path, "empty corpus: no passages")
    lineno, text = first
    if not text.lstrip().startswith("{"):
        return CorpusFormat.msmarco
    try:
        record = json_input.loads(text, path, lineno)
    except json.JSONDecodeError as err:
        raise InputError(path, f"malformed JSON ({err.msg} at column {err.colno})", line=lineno) from None
    if isinstance(record, dict) and "contents" in record:
        return CorpusFormat.pyserini
    return CorpusFormat.beir


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> float:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise _NotFinite(text)
    return value


def json_record(path: str | Path, lineno: int, text: str) -> dict:
    """One JSON object per line. Python's reader takes the bare tokens NaN and Infinity (not JSON) and turns 1e999
    into inf: a non-finite score would poison a whole training run, so each is an error here."""
    try:
        record = json_input.loads(text, path, lineno, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotFinite as err:
        raise InputError(path, f"{err} is not a finite number", line=lineno) from None
    except json.JSONDecodeError as err:
        raise InputError(path, f"malformed JSON ({err.msg} at column {err.colno})", line=lineno) from None
    if not isinstance(record, dict):
        raise InputError(path, "expected a JSON object", line=lineno)
    return record


def _string_field(path: str | Path, lineno: int, record: dict, field: str, required: bool) -> str:
    value = record.get(field)
    if value is None:
        if required:
            raise InputError(path, "missing", line=lineno, field=field)
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(path, f"expected a string, got {type(value).__name__}", line=lineno, field=field)
    return str(value)


def _check_id(path: str | Path, lineno: int, field: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InputError(path, "empty id", line=lineno, field=field)
    if len(value.split()) != 1:  # any Unicode white space (NBSP, U+2028, \x0b): run readers split on it
        raise InputError(path, f"id {value!r} contains white space", line=lineno, field=field)
    return value


def _iter_json(path: str | Path, fmt: CorpusFormat) -> Iterator[Passage]:
    id_field, text_field = ("_id", "text") if fmt is CorpusFormat.beir else ("id", "contents")
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        record = json_record(path, lineno, text)
        pid = _check_id(path, lineno, id_field, _string_field(path, lineno, record, id_field, True))
        body = _string_field(path, lineno, record, text_field, True)
        title = _string_field(path, lineno, record, "title", False)
        yield Passage(pid, title.strip(), body.strip(), lineno)


def _iter_tsv(path: str | Path) -> Iterator[Passage]:
    dpr_order = False
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        cols = text.split("\t")
        if lineno == 1 and [c.strip().lower() for c in cols] == ["id", "text", "title"]:
            dpr_order = True  # DPR's psgs_w100.tsv header
            continue
        if len(cols) == 2:
            pid, title, body = cols[0], "", cols[1]
        elif len(cols) == 3:
            pid, title, body = (cols[0], cols[2], cols[1]) if dpr_order else cols
        else:
            raise InputError(path, f"expected 2 or 3 tab-separated columns, got {len(cols)}", line=lineno)
        yield Passage(_check_id(path, lineno, "pid", pid), title.strip(), body.strip(), lineno)


def iter_corpus(
    path: str | Path, fmt: CorpusFormat = CorpusFormat.auto, check_duplicates: bool = True
) -> Iterator[Passage]:
    """Stream the passages of a corpus; errors name the file, line and field.

    Duplicate ids are an error (they would silently shadow each other in an index); the check keeps only
    the set of ids in memory, never the passages.
    """
    if fmt is CorpusFormat.auto:
        fmt = detect_corpus_format(path)
    records = _iter_tsv(path) if fmt is CorpusFormat.msmarco else _iter_json(path, fmt)
    seen: set[str] = set()
    count = 0
    for passage in records:
        if check_duplicates:
            if passage.id in seen:
                raise InputError(path, f"duplicate id {passage.id!r}", line=passage.line)
            seen.add(passage.id)
        count += 1
        yield passage
    if count == 0:
        raise InputError(path, "empty corpus: no passages")


def load_passages(path: str | Path, fmt: CorpusFormat = CorpusFormat.auto) -> dict[str, Passage]:
    """The whole corpus, id -> passage (re-ranking looks passages up at random)."""
    return {p.id: p for p in iter_corpus(path, fmt)}
