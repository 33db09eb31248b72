"""`simlm rerank score`: a training file rewritten with the re-ranker's scores, the teacher of `simlm distill`.

Streamed as re-ranking is: a few queries' pairs are scored at a time, so memory holds the corpus, never the file.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

from simlm_cli.console import info, progress
from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import Passage, load_passages
from simlm_cli.io.files import atomic_output, check_output_file, count_lines
from simlm_cli.io.train_file import Candidate, TrainExample, iter_train_file, write_example
from simlm_cli.models.cross_encoder import CrossEncoder
from simlm_cli.options.rerank import ScoreConfig
from simlm_cli.pipeline.rerank import DRY_RUN_QUERIES, PENDING_BATCHES, chunks

_EMPTY = object()


def _scored(
    examples: list[TrainExample], reranker: CrossEncoder, passages: dict[str, Passage]
) -> Iterator[TrainExample]:
    groups = [[*e.positives, *e.negatives] for e in examples]
    queries = [e.query for e, group in zip(examples, groups) for _c in group]
    texts = [passages[c.docid].joined() for group in groups for c in group]
    scores = reranker.score(queries, texts)
    start = 0
    for example, group in zip(examples, groups):
        new = [Candidate(c.docid, float(s)) for c, s in zip(group, scores[start : start + len(group)])]
        start += len(group)
        split = len(example.positives)
        yield TrainExample(example.qid, example.query, new[:split], new[split:], example.line)


def _pairs(example: TrainExample) -> int:
    return len(example.positives) + len(example.negatives)


def score_train_file(c: ScoreConfig) -> dict[str, Any]:
    """Rewrite a training file with the re-ranker's raw logit as every positive's and negative's score."""
    if c.max_negatives is not None and c.max_negatives < 0:
        raise SimlmError("--max-negatives must be 0 or more")
    check_output_file(c.output, [c.train_file, c.corpus, c.model])
    runtime = c.runtime.resolve()
    passages = load_passages(c.corpus, c.corpus_format)
    examples = iter_train_file(c.train_file, corpus_ids=passages)
    # Read the first line before loading the model: a wrong file then fails fast, its error the only line.
    first = next(examples, _EMPTY)
    if first is _EMPTY:
        raise InputError(c.train_file, "no training queries")
    reranker = CrossEncoder.load(c.model, runtime, c.batch_size, log=info)
    info(f"scoring {c.train_file} with {c.model} (pairs of <= {reranker.max_length} tokens); {runtime.describe()}")
    counts = {"queries": 0, "skipped": 0, "pairs": 0}

    def usable() -> Iterator[TrainExample]:
        kept = 0
        for example in itertools.chain([first], examples):
            if not isinstance(example, TrainExample):  # no positive: nothing to score against
                counts["skipped"] += 1
            elif c.dry_run and kept >= DRY_RUN_QUERIES:
                return
            else:
                example.negatives = example.negatives[: c.max_negatives]  # None keeps them all
                kept += 1
                yield example

    started = time.perf_counter()
    with ExitStack() as stack:
        bar = stack.enter_context(progress())
        task = bar.add_task("score", total=count_lines(c.train_file) or None, rate="")
        handle = stack.enter_context(atomic_output(c.output))
        for chunk in chunks(usable(), _pairs, PENDING_BATCHES * reranker.batch_size):
            for example in _scored(chunk, reranker, passages):
                write_example(handle, example)
            counts["queries"] += len(chunk)
            counts["pairs"] += sum(map(_pairs, chunk))
            rate = counts["pairs"] / (time.perf_counter() - started)
            bar.update(task, completed=chunk[-1].line, rate=f"{rate:,.1f} pairs/s")
    seconds = time.perf_counter() - started
    if counts["skipped"]:
        info(f"{c.train_file}: left out {counts['skipped']} queries with no positive")
    info(f"scored {counts['queries']:,} queries ({counts['pairs']:,} pairs) in {seconds:.1f} s -> {c.output}")
    return {**counts, "seconds": round(seconds, 3), "output": c.output}
