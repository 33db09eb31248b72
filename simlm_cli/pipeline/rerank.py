"""`simlm rerank`: re-rank a run with a trained cross-encoder (`simlm_cli.models.cross_encoder.CrossEncoder`).

Training is `simlm_cli.pipeline.train.train_reranker`, teacher scores `simlm_cli.pipeline.teacher`. Runs are
streamed: a few queries' pairs are scored at a time (length-sorted into batches), so memory holds the corpus and
the query set, never the whole run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import Any, TypeVar

import numpy as np

from simlm_cli.console import info, progress
from simlm_cli.dry_run import RERANK_QUERIES as DRY_RUN_QUERIES
from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import Passage, load_passages
from simlm_cli.io.files import check_output_file, count_lines
from simlm_cli.io.queries import read_queries
from simlm_cli.io.runs import Ranking, RunBlock, format_for_output, iter_run_blocks, write_run
from simlm_cli.models.cross_encoder import CrossEncoder
from simlm_cli.options.rerank import RerankRunConfig

# Pairs gathered (over whole queries) before scoring: enough for several full batches to length-sort.
PENDING_BATCHES = 4
T = TypeVar("T")


# -- runs -----------------------------------------------------------------------------------------------------------
def _checked_blocks(
    c: RerankRunConfig, queries: dict[str, str], passages: dict[str, Passage]
) -> Iterator[tuple[RunBlock, int, list[str]]]:
    """(top-depth block, lines it spanned, the documents below depth) for each query, every re-ranked id checked
    against the queries and corpus.

    The reader orders each block by the run's score (MS MARCO: rank), so the top `depth` are its first documents.
    """
    for index, block in enumerate(iter_run_blocks(c.run, c.run_format)):
        if c.dry_run and index >= DRY_RUN_QUERIES:
            return
        if block.qid not in queries:
            raise InputError(c.run, f"query {block.qid!r} is not in {c.queries}", line=block.line)
        top = block.top(c.depth)
        for docid, lineno in zip(top.docids, top.lines):
            if docid not in passages:
                raise InputError(c.run, f"document {docid!r} is not in the corpus {c.corpus}", line=lineno)
        yield top, len(block.lines), block.docids[c.depth :] if c.keep_tail else []


def chunks(items: Iterable[T], size: Callable[[T], int], limit: int) -> Iterator[list[T]]:
    """Consecutive items gathered until their sizes (pairs) reach `limit`: whole queries, several batches' worth."""
    chunk: list[T] = []
    total = 0
    for item in items:
        chunk.append(item)
        total += size(item)
        if total >= limit:
            yield chunk
            chunk, total = [], 0
    if chunk:
        yield chunk


def _rerank(
    blocks: Iterable[tuple[RunBlock, int, list[str]]],
    reranker: CrossEncoder,
    queries: dict[str, str],
    passages: dict[str, Passage],
    advance: Callable[[int, int], None],
) -> Iterator[Ranking]:
    """Re-scored rankings, scoring the pairs of several queries at once."""
    for chunk in chunks(blocks, lambda item: len(item[0].docids), PENDING_BATCHES * reranker.batch_size):
        yield from _score_blocks(chunk, reranker, queries, passages, advance)


def _score_blocks(
    blocks: list[tuple[RunBlock, int, list[str]]],
    reranker: CrossEncoder,
    queries: dict[str, str],
    passages: dict[str, Passage],
    advance: Callable[[int, int], None],
) -> Iterator[Ranking]:
    pair_queries = [queries[b.qid] for b, _, _ in blocks for _d in b.docids]
    texts = [passages[d].joined() for b, _, _ in blocks for d in b.docids]
    scores = reranker.score(pair_queries, texts)
    start = 0
    for block, lines, tail in blocks:
        mine = scores[start : start + len(block.docids)]
        start += len(block.docids)
        order = np.argsort(-mine, kind="stable")
        advance(lines, len(block.docids))
        docids = [block.docids[i] for i in order]
        head = [float(mine[i]) for i in order]
        yield block.qid, docids + tail, head + tail_scores(head[-1] if head else 0.0, len(tail))


def tail_scores(lowest: float, count: int) -> list[float]:
    """Scores for the documents below the re-ranked depth: below the head's lowest, falling by 1 per rank, so
    the head stays on top and the tail keeps the run's order. They order the tail; they are no model's scores."""
    return [lowest - 1.0 - i for i in range(count)]


def rerank_run(c: RerankRunConfig) -> dict[str, Any]:
    """Re-rank the top `depth` documents of each query of a run; returns a summary."""
    if c.depth < 1:
        raise SimlmError("--depth must be at least 1")
    check_output_file(c.output, [c.run, c.queries, c.corpus, c.model])
    runtime = c.runtime.resolve()
    queries = read_queries(c.queries, c.queries_format)
    passages = load_passages(c.corpus, c.corpus_format)
    # Check the first query before loading the model: a wrong file then fails fast, its error the only line.
    blocks = _checked_blocks(c, queries, passages)
    first = next(blocks, None)
    reranker = CrossEncoder.load(c.model, runtime, c.batch_size, log=info)
    info(
        f"re-ranking the top {c.depth} of each query of {c.run} with {c.model} (pairs of <= {reranker.max_length} "
        f"tokens; {'the rest follow in the run' + chr(39) + 's order' if c.keep_tail else 'the rest dropped'}); "
        f"{runtime.describe()}"
    )
    started = time.perf_counter()
    pairs = 0
    with ExitStack() as stack:
        bar = stack.enter_context(progress())
        task = bar.add_task("rerank", total=count_lines(c.run) or None, rate="")

        def advance(lines: int, scored: int) -> None:
            nonlocal pairs
            pairs += scored
            bar.update(task, advance=lines, rate=f"{pairs / (time.perf_counter() - started):,.1f} pairs/s")

        fmt = format_for_output(c.output, c.output_format)
        checked = itertools.chain([] if first is None else [first], blocks)
        count = write_run(c.output, _rerank(checked, reranker, queries, passages, advance), fmt, c.tag)
    seconds = time.perf_counter() - started
    info(f"re-ranked {count:,} queries ({pairs:,} pairs) in {seconds:.1f} s -> {c.output} ({fmt.value})")
    return {"queries": count, "pairs": pairs, "seconds": round(seconds, 3), "output": c.output}
