"""Relevance judgments: BEIR TSV (`query-id corpus-id score`, with header) and TREC (`qid 0 docid rel`); detected
by the column count, or forced."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from simlm_cli.errors import InputError
from simlm_cli.io.files import iter_lines


@dataclass
class Qrels:
    path: str
    judgments: dict[str, dict[str, int]] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)  # query id -> line, for error messages
    line_of: dict[tuple[str, str], int] = field(default_factory=dict)  # (query, doc) -> line

    def relevant(self, qid: str, threshold: int = 1) -> set[str]:
        return {d for d, rel in self.judgments.get(qid, {}).items() if rel >= threshold}

    def __len__(self) -> int:
        return len(self.judgments)


class QrelsFormat(str, Enum):
    auto = "auto"  # 3 columns: BEIR (a header line first), 4: TREC
    beir = "beir"
    trec = "trec"


_COLUMNS = {QrelsFormat.beir: 3, QrelsFormat.trec: 4}


def read_qrels(path: str | Path, fmt: QrelsFormat = QrelsFormat.auto) -> Qrels:
    """Read judgments; a (query, document) pair judged twice is an error naming both lines."""
    fmt = QrelsFormat(fmt)
    qrels = Qrels(str(path))
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        cols = text.split()
        if lineno == 1 and fmt is not QrelsFormat.trec and not _is_int(cols[-1]):
            continue  # BEIR header: query-id corpus-id score
        expected = _COLUMNS.get(fmt, len(cols))
        if len(cols) != expected or expected not in (3, 4):
            what = f"{expected} ({fmt.value})" if fmt is not QrelsFormat.auto else "3 (BEIR) or 4 (TREC)"
            raise InputError(path, f"expected {what} columns, got {len(cols)}", line=lineno)
        qid, docid, grade = (cols[0], cols[2], cols[3]) if len(cols) == 4 else cols  # TREC: qid iter docid rel
        if not _is_int(grade):
            raise InputError(path, f"relevance {grade!r} is not an integer", line=lineno, field="relevance")
        if (qid, docid) in qrels.line_of:
            raise InputError(
                path, f"query {qid!r} judges {docid!r} again (first on line {qrels.line_of[qid, docid]})", line=lineno
            )
        qrels.judgments.setdefault(qid, {})[docid] = int(grade)
        qrels.first_line.setdefault(qid, lineno)
        qrels.line_of[qid, docid] = lineno
    if not qrels.judgments:
        raise InputError(path, "no judgments")
    return qrels


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
