"""Relevance judgments: BEIR TSV (`query-id corpus-id score`, with header) and TREC (`qid 0 docid rel`)."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def read_qrels(path: str | Path) -> Qrels:
    qrels = Qrels(str(path))
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        cols = text.split()
        if lineno == 1 and not _is_int(cols[-1]):
            continue  # BEIR header: query-id corpus-id score
        if len(cols) == 4:
            qid, docid, grade = cols[0], cols[2], cols[3]  # TREC: qid iter docid rel
        elif len(cols) == 3:
            qid, docid, grade = cols
        else:
            raise InputError(path, f"expected 3 (BEIR) or 4 (TREC) columns, got {len(cols)}", line=lineno)
        if not _is_int(grade):
            raise InputError(path, f"relevance {grade!r} is not an integer", line=lineno, field="relevance")
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
