"""Training files: JSONL, one query per line, written by `simlm mine` and `simlm rerank score`.

    {"qid": "3", "query": "text", "positives": [{"docid": "d1", "score": 14.2}],
     "negatives": [{"docid": "d7", "score": 12.9}, {"docid": "d4", "score": null}]}

`score` is what the producer knew: the retriever's score (mine; null for random negatives) or the re-ranker's
(rerank score, what `simlm distill` learns from). Reading validates every line and names the file and line of
the first problem. Skipped and counted (documented), not errors: a query with no positive, and a query with fewer
negatives than a command needs (`simlm mine` writes judged queries the run missed with no negatives). A negative
that is also one of the query's positives is dropped: a judged positive is never trained as a negative.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from simlm_cli.errors import InputError
from simlm_cli.io.corpus import json_record
from simlm_cli.io.files import iter_lines


@dataclass(frozen=True)
class Skipped:
    """What `iter_train_file` yields for a query it skips: why ("no positive", "few negatives") and where."""

    reason: str
    line: int


@dataclass
class Candidate:
    docid: str
    score: float | None = None


@dataclass
class TrainExample:
    qid: str
    query: str
    positives: list[Candidate] = field(default_factory=list)
    negatives: list[Candidate] = field(default_factory=list)
    line: int = 0  # where it was read, for later error messages

    def to_json(self) -> dict:
        return {
            "qid": self.qid,
            "query": self.query,
            "positives": [{"docid": c.docid, "score": c.score} for c in self.positives],
            "negatives": [{"docid": c.docid, "score": c.score} for c in self.negatives],
        }


@dataclass
class TrainFile:
    path: str
    examples: list[TrainExample]
    skipped_no_positive: int = 0
    skipped_few_negatives: int = 0
    first_few_negatives_line: int = 0  # where the first such query is, for the message

    def describe_skipped(self, min_negatives: int) -> str | None:
        """One line counting the skipped queries, or None when none was."""
        parts = []
        if self.skipped_no_positive:
            parts.append(f"{self.skipped_no_positive} with no positive")
        if self.skipped_few_negatives:
            parts.append(
                f"{self.skipped_few_negatives} with fewer than {min_negatives} negative(s), the first on line "
                f"{self.first_few_negatives_line}"
            )
        total = self.skipped_no_positive + self.skipped_few_negatives
        return f"{self.path}: skipped {total} queries ({'; '.join(parts)})" if parts else None


def write_example(handle: IO[str], example: TrainExample) -> None:
    handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")


def _finite(path: str | Path, lineno: int, where: str, score: int | float) -> float:
    """A score as a float; one past float's range (an integer of 400 digits) would be inf, or a traceback."""
    try:
        value = float(score)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise InputError(path, f"score {score!r} is not a finite number", line=lineno, field=f"{where}.score")
    return value


def _candidates(path: str | Path, lineno: int, record: dict, name: str, need_scores: bool) -> list[Candidate]:
    value = record.get(name, [])
    if not isinstance(value, list):
        raise InputError(path, f"expected a list, got {type(value).__name__}", line=lineno, field=name)
    out = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if isinstance(item, str | int) and not isinstance(item, bool):
            item = {"docid": str(item)}  # a bare id list is accepted
        if not isinstance(item, dict) or not isinstance(item.get("docid"), str | int) or item.get("docid") == "":
            raise InputError(path, "expected {'docid': ..., 'score': ...}", line=lineno, field=where)
        score = item.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise InputError(path, f"score {score!r} is not a number", line=lineno, field=f"{where}.score")
        if need_scores and score is None:
            raise InputError(
                path, "no score (distillation needs a teacher score on every passage: `simlm rerank score`)",
                line=lineno, field=f"{where}.score",
            )  # fmt: skip
        out.append(Candidate(str(item["docid"]), None if score is None else _finite(path, lineno, where, score)))
    return out


def iter_train_file(
    path: str | Path,
    corpus_ids: Container[str] | None = None,
    min_negatives: int = 0,
    need_scores: bool = False,
) -> Iterator[TrainExample | Skipped]:
    """Each line's example, or a `Skipped` saying why it is left out (the caller counts them)."""
    seen: dict[str, int] = {}
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        record = json_record(path, lineno, text)
        for name in ("qid", "query"):
            value = record.get(name)
            if not isinstance(value, str | int) or isinstance(value, bool) or str(value).strip() == "":
                raise InputError(path, "missing or empty", line=lineno, field=name)
        qid = str(record["qid"])
        if qid in seen:
            raise InputError(path, f"query {qid!r} already on line {seen[qid]}", line=lineno, field="qid")
        seen[qid] = lineno
        positives = _candidates(path, lineno, record, "positives", need_scores)
        negatives = _candidates(path, lineno, record, "negatives", need_scores)
        if corpus_ids is not None:
            for name, group in (("positives", positives), ("negatives", negatives)):
                for c in group:
                    if c.docid not in corpus_ids:
                        raise InputError(path, f"document {c.docid!r} is not in the corpus", line=lineno, field=name)
        if not positives:
            yield Skipped("no positive", lineno)
            continue
        positive_ids = {c.docid for c in positives}
        negatives = [c for c in negatives if c.docid not in positive_ids]
        if len(negatives) < min_negatives:
            yield Skipped("few negatives", lineno)
            continue
        yield TrainExample(qid, str(record["query"]), positives, negatives, lineno)


def read_train_file(
    path: str | Path,
    corpus_ids: Container[str] | None = None,
    min_negatives: int = 0,
    need_scores: bool = False,
) -> TrainFile:
    """The whole file (training samples from it at random); an empty result is an error."""
    parsed = TrainFile(str(path), [])
    for example in iter_train_file(path, corpus_ids, min_negatives, need_scores):
        if isinstance(example, TrainExample):
            parsed.examples.append(example)
        elif example.reason == "no positive":
            parsed.skipped_no_positive += 1
        else:
            parsed.skipped_few_negatives += 1
            parsed.first_few_negatives_line = parsed.first_few_negatives_line or example.line
    if not parsed.examples:
        raise InputError(
            path, f"no usable training query ({parsed.describe_skipped(min_negatives) or 'the file is empty'})"
        )
    return parsed
