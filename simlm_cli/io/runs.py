"""Ranked runs in TREC (`qid Q0 docid rank score tag`) and MS MARCO (`qid \\t docid \\t rank`) formats.

Writers are a small enum -> function mapping; every run is written atomically.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO

from simlm_cli.errors import InputError
from simlm_cli.io.files import atomic_output, first_content_line, iter_lines

# One query's ranking: document ids with their scores, best first.
Ranking = tuple[str, Sequence[str], Sequence[float]]


class RunFormat(str, Enum):
    auto = "auto"
    trec = "trec"
    msmarco = "msmarco"


@functools.cache
def _rank_strings(depth: int) -> tuple[str, ...]:
    return tuple(str(rank) for rank in range(1, depth + 1))


def _ranks(count: int) -> tuple[str, ...]:
    return _rank_strings(max(1000, count))  # one cached tuple serves every query of a run


# Writers format whole rankings with one join each: a 1M-line run costs ~0.6 s, small next to the search.
def _write_trec(handle: IO[str], qid: str, docids: Sequence[str], scores: Sequence[float], tag: str) -> None:
    head, tail = f"{qid} Q0 ", f" {tag}\n"
    ranks = _ranks(len(docids))
    handle.write("".join([f"{head}{d} {r} {s:.6f}{tail}" for d, r, s in zip(docids, ranks, scores)]))


def _write_msmarco(handle: IO[str], qid: str, docids: Sequence[str], scores: Sequence[float], tag: str) -> None:
    head = f"{qid}\t"
    ranks = _ranks(len(docids))
    handle.write("".join([f"{head}{d}\t{r}\n" for d, r in zip(docids, ranks)]))


_WRITERS: dict[RunFormat, Callable[[IO[str], str, Sequence[str], Sequence[float], str], None]] = {
    RunFormat.trec: _write_trec,
    RunFormat.msmarco: _write_msmarco,
}


def format_for_output(path: str | Path, fmt: RunFormat) -> RunFormat:
    """`auto` picks MS MARCO for `.tsv` outputs and TREC otherwise."""
    if fmt is not RunFormat.auto:
        return fmt
    return RunFormat.msmarco if str(path).removesuffix(".gz").endswith(".tsv") else RunFormat.trec


def write_run(
    path: str | Path | None, rankings: Iterable[Ranking], fmt: RunFormat = RunFormat.auto, tag: str = "simlm"
) -> int:
    """Write rankings atomically to `path` (or to stdout for None); returns the number of queries written."""
    writer = _WRITERS[format_for_output(path or "-", fmt)]
    count = 0
    with contextlib.nullcontext(sys.stdout) if path is None else atomic_output(path) as handle:
        for qid, docids, scores in rankings:
            writer(handle, qid, docids, scores, tag)
            count += 1
    return count


def detect_run_format(path: str | Path) -> RunFormat:
    first = first_content_line(path)
    if first is None:
        raise InputError(path, "empty run")
    lineno, text = first
    cols = text.split()
    if len(cols) == 6:
        return RunFormat.trec
    if len(cols) == 3:
        return RunFormat.msmarco
    raise InputError(path, f"cannot tell the run format: {len(cols)} columns (TREC has 6, MS MARCO 3)", line=lineno)


@dataclass
class Run:
    path: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # qid -> docid -> score
    first_line: dict[str, int] = field(default_factory=dict)  # qid -> line, for error messages


def read_run(path: str | Path, fmt: RunFormat = RunFormat.auto) -> Run:
    """Read a whole run. MS MARCO runs have ranks only: the score is -rank, so the order is kept."""
    if fmt is RunFormat.auto:
        fmt = detect_run_format(path)
    width = 6 if fmt is RunFormat.trec else 3
    run = Run(str(path))
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        cols = text.split()
        if len(cols) != width:
            raise InputError(path, f"expected {width} columns ({fmt.value} run), got {len(cols)}", line=lineno)
        if fmt is RunFormat.trec:
            qid, docid, value, field = cols[0], cols[2], cols[4], "score"
        else:
            qid, docid, value, field = cols[0], cols[1], cols[2], "rank"
        try:
            number = float(value)
        except ValueError:
            raise InputError(path, f"{value!r} is not a number", line=lineno, field=field) from None
        ranking = run.scores.setdefault(qid, {})
        run.first_line.setdefault(qid, lineno)
        if docid in ranking:
            raise InputError(path, f"document {docid!r} appears twice for query {qid!r}", line=lineno)
        ranking[docid] = number if fmt is RunFormat.trec else -number
    if not run.scores:
        raise InputError(path, "empty run")
    return run
