"""Search an index (dense or BM25) with a query file and write a run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from simlm_cli.console import info, progress
from simlm_cli.dry_run import QUERIES as DRY_RUN_QUERIES
from simlm_cli.errors import InputError
from simlm_cli.index.bm25 import BM25Index
from simlm_cli.io.files import check_output_file
from simlm_cli.io.qrels import read_qrels
from simlm_cli.io.queries import read_queries
from simlm_cli.io.runs import write_run
from simlm_cli.options.search import SearchConfig
from simlm_cli.pipeline.indexes import (
    check_qrels_documents,
    choose_search_backend,
    is_dense_set,
    open_dense,
    query_encoder,
    refuse_dense_search_options,
)

QUERY_BLOCK = 4096  # queries encoded together; bounds memory for large query sets
# Queries per faiss call: writing one block overlaps searching the next; smaller blocks cost GEMM speed.
SEARCH_BLOCK = 1024


def select_queries(config: SearchConfig) -> dict[str, str]:
    """The queries to run: all of them, or those judged in --qrels (each of which must exist)."""
    queries = read_queries(config.queries, config.formats.queries_format)
    if config.qrels:
        qrels = read_qrels(config.qrels, config.formats.qrels_format)
        for qid, line in qrels.first_line.items():
            if qid not in queries:
                raise InputError(config.qrels, f"query {qid!r} is judged but not in {config.queries}", line=line)
        queries = {qid: text for qid, text in queries.items() if qid in qrels.judgments}
    if config.dry_run:
        queries = dict(itertools.islice(queries.items(), DRY_RUN_QUERIES))
    return queries


def _check_qrels(config: SearchConfig, contains: Callable[[str], bool], partial_index: bool = False) -> None:
    names = ", ".join(config.index)
    check_qrels_documents(config.qrels, config.formats.qrels_format, names, contains, partial_index)


def run_search(config: SearchConfig) -> dict:
    # before reading the index or searching
    check_output_file(config.output, [*config.index, config.queries, config.qrels, config.dense.model])
    started = time.perf_counter()
    queries = select_queries(config)
    with progress() as bar:
        task = bar.add_task("search", total=len(queries), rate="")

        def advance(n: int) -> None:
            bar.update(task, advance=n, rate=f"{bar.tasks[0].completed / (time.perf_counter() - started):,.1f} q/s")

        search = _dense_rankings if is_dense_set(config.index) else _bm25_rankings
        count = write_run(config.output, search(config, queries, advance), config.run_format, config.tag)
    seconds = time.perf_counter() - started
    info(f"searched {count:,} queries (top {config.k}) in {seconds:.1f} s -> {config.output or 'stdout'}")
    return {"queries": count, "seconds": seconds}


def _dense_rankings(config: SearchConfig, queries: dict[str, str], advance: Callable[[int], None]) -> Iterator[tuple]:
    index = open_dense(config.index, gpu=config.gpu)
    index.set_search_params(ef_search=config.ef_search, nprobe=config.nprobe)
    _check_qrels(config, set(index.docids.tolist()).__contains__, index.meta.get("dry_run", False))
    runtime = config.dense.runtime.resolve()
    choose_search_backend(
        index, config.dense.search_backend, runtime.device, config.gpu, config.dense.search_shard_rows
    )
    encoder = query_encoder(index, config.dense.model, runtime, config.dense.batch_size)
    qids = list(queries)
    for start in range(0, len(qids), QUERY_BLOCK):
        block = qids[start : start + QUERY_BLOCK]
        vectors = encoder.encode_queries([queries[q] for q in block])
        yield from search_overlapped(index, block, vectors, config.k, advance)


def search_overlapped(
    index: Any, qids: list[str], vectors: Any, k: int, advance: Callable[[int], None] | None = None
) -> Iterator[tuple]:
    """Rankings of `qids`, searched SEARCH_BLOCK queries at a time on a worker thread: faiss releases the GIL, so
    the next block is searched while the caller writes this one's run lines."""
    starts = range(0, len(qids), SEARCH_BLOCK)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simlm-faiss") as pool:
        pending = pool.submit(index.search, vectors[:SEARCH_BLOCK], k)
        for start in starts:
            scores, rows = pending.result()
            following = start + SEARCH_BLOCK
            if following < len(qids):
                pending = pool.submit(index.search, vectors[following : following + SEARCH_BLOCK], k)
            yield from index.ranked_blocks(qids[start:following], scores, rows)
            if advance is not None:
                advance(len(qids[start:following]))


def _bm25_rankings(config: SearchConfig, queries: dict[str, str], advance: Callable[[int], None]) -> Iterator[tuple]:
    refuse_dense_search_options(config.index[0], config.dense.search_backend, config.dense.search_shard_rows)
    index = BM25Index(config.index[0])
    _check_qrels(config, index.contains)
    qids = list(queries)
    texts = [queries[q] for q in qids]
    yield from index.search(
        qids, texts, config.k, config.bm25.k1, config.bm25.b, config.bm25.threads, on_queries=advance
    )
