"""Queries: BEIR `queries.jsonl` (`_id`, `text`) or TSV `qid \\t text`; detected line by line, or forced."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from simlm_cli.errors import InputError
from simlm_cli.io.corpus import json_record
from simlm_cli.io.files import iter_lines


class QueriesFormat(str, Enum):
    auto = "auto"  # a line starting with "{" is BEIR JSON, any other a TSV line
    beir = "beir"
    tsv = "tsv"


def read_queries(path: str | Path, fmt: QueriesFormat = QueriesFormat.auto) -> dict[str, str]:
    """Read all queries (query sets fit in memory); duplicate, empty or white-space-holding ids are errors."""
    fmt = QueriesFormat(fmt)
    queries: dict[str, str] = {}
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        is_json = text.lstrip().startswith("{") if fmt is QueriesFormat.auto else fmt is QueriesFormat.beir
        if is_json:
            qid, query = _json_query(path, lineno, text)
        else:
            cols = text.split("\t")
            if len(cols) != 2:
                raise InputError(path, f"expected 'qid<TAB>text', got {len(cols)} columns", line=lineno)
            qid, query = cols[0].strip(), cols[1].strip()
        if not query:  # an empty query would be searched all the same, its ranking noise
            raise InputError(path, "empty query text", line=lineno, field="text" if is_json else None)
        if not qid:
            raise InputError(path, "empty query id", line=lineno)
        if len(qid.split()) != 1:
            raise InputError(path, f"query id {qid!r} holds white space (run files could not name it)", line=lineno)
        if qid in queries:
            raise InputError(path, f"duplicate query id {qid!r}", line=lineno)
        queries[qid] = query
    if not queries:
        raise InputError(path, "no queries")
    return queries


def _json_query(path: str | Path, lineno: int, text: str) -> tuple[str, str]:
    record = json_record(path, lineno, text)
    for field in ("_id", "text"):
        if field not in record or record[field] is None:
            raise InputError(path, "missing", line=lineno, field=field)
    qid, query = record["_id"], record["text"]
    if isinstance(qid, bool) or not isinstance(qid, str | int):  # BEIR ids are strings; plain numbers are kept
        raise InputError(path, f"expected a string, got {type(qid).__name__}", line=lineno, field="_id")
    if not isinstance(query, str):  # 5 would be searched as the text "5"
        raise InputError(path, f"expected a string, got {type(query).__name__}", line=lineno, field="text")
    return str(qid).strip(), query.strip()
