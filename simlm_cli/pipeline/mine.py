"""`simlm mine`: hard negatives for training queries, streamed into a training file (simlm_cli/io/train_file.py).

Candidates come from exactly one of
- `--run RUN`: a TREC or MS MARCO run (format auto-detected from the first line, `--run-format` forces it),
  streamed one query's block at a time by `simlm_cli.io.runs.iter_run_blocks` (contiguous blocks, each ordered
  by score or rank), so a run written in any order inside a block still mines its top documents.
- `--index DIR`: a `simlm index` directory (dense faiss or BM25); the judged training queries are searched
  `INDEX_BATCH` at a time to `--depth` and mined as the results come.

Per query (every query of `--qrels` with at least one document of grade >= `--min-relevance`):
- positives: every such judged document, in qrels order, with its retrieval score when it is within the top
  `--depth` (null otherwise, and counted as "positives not retrieved");
- negatives: the top `--depth` candidates minus every judged document (judged below `--min-relevance`: neither
  positive nor negative), kept when their 1-based rank is within `--rank-range START:END` (default: all), and
  not within `--score-margin M` of (or above) the best retrieved positive's score (off by default; a no-op for a
  query whose positives were not retrieved; MS MARCO runs have no scores, so the margin is an error with one),
  then cut to the best-ranked `--max-negatives N`;
- `--random-negatives K`: K more passages drawn from the corpus ids (`--corpus`, else the index's own ids) that
  are neither judged for the query nor already negatives, score null; the draw is a function of `--seed` and the
  query id only, so it does not change when other queries come or go.
Output lines follow the run (or the queries file with --index); judged queries absent from the run come last, in
queries-file order, with their positives and no mined negatives. Run queries with no positive are skipped.
`--dry-run` writes the first `DRY_RUN_QUERIES` queries only. The summary goes to stderr (and as JSON to stdout
with `--json` in the command).
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from simlm_cli.console import info
from simlm_cli.dry_run import QUERIES as DRY_RUN_QUERIES
from simlm_cli.errors import InputError, SimlmError
from simlm_cli.index.bm25 import BM25Index
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.io.files import atomic_output, check_output_file
from simlm_cli.io.qrels import Qrels, read_qrels
from simlm_cli.io.queries import read_queries
from simlm_cli.io.runs import RunBlock, iter_run_blocks
from simlm_cli.io.train_file import Candidate, TrainExample, write_example
from simlm_cli.options.mine import MineConfig
from simlm_cli.pipeline.indexes import (
    check_qrels_documents,
    choose_search_backend,
    is_dense_set,
    open_dense,
    query_encoder,
    refuse_dense_search_options,
)

INDEX_BATCH = 256  # queries searched together with --index: bounds the results held at once


@dataclass
class MineStats:
    queries: int = 0
    negatives: int = 0
    random_negatives: int = 0
    no_mined_negatives: int = 0
    positives_not_retrieved: int = 0
    margin_dropped: int = 0
    not_in_run: int = 0
    run_queries_skipped: int = 0  # run queries with no positive in the qrels
    qrels_queries_without_positive: int = 0

    def summary(self) -> dict:
        mean = self.negatives / self.queries if self.queries else 0.0
        return {
            "queries": self.queries,
            "mean_negatives": round(mean, 4),
            "random_negatives": self.random_negatives,
            "queries_without_retrieved_negatives": self.no_mined_negatives,
            "positives_not_retrieved": self.positives_not_retrieved,
            "margin_dropped": self.margin_dropped,
            "queries_not_in_run": self.not_in_run,
            "run_queries_skipped": self.run_queries_skipped,
            "qrels_queries_without_positive": self.qrels_queries_without_positive,
        }


# -- mining ---------------------------------------------------------------------------------------------------
@dataclass
class Judgments:
    """What the qrels say about one query: its positives (qrels order) and every judged document."""

    positives: list[str]
    judged: set[str] = field(default_factory=set)


def training_queries(qrels: Qrels, queries: dict[str, str], min_relevance: int) -> tuple[dict, int]:
    """(qid -> Judgments for each judged query with a positive, in queries-file order; judged queries without
    a positive)."""
    for qid, line in qrels.first_line.items():
        if qid not in queries:
            raise InputError(qrels.path, f"query {qid!r} is judged but not in the queries file", line=line)
    wanted = {}
    without = 0
    for qid in queries:
        grades = qrels.judgments.get(qid)
        if grades is None:
            continue
        positives = [d for d, grade in grades.items() if grade >= min_relevance]
        if positives:
            wanted[qid] = Judgments(positives, set(grades))
        else:
            without += 1
    return wanted, without


class Miner:
    """Turns one query's candidates into a TrainExample, counting what it did in `stats`."""

    def __init__(self, config: MineConfig, queries: dict[str, str], wanted: dict, corpus_ids: Sequence[str] | None):
        self.config = config
        self.queries = queries
        self.wanted: dict[str, Judgments] = wanted
        self.corpus_ids = corpus_ids
        self.stats = MineStats()

    def mine(self, qid: str, docids: Sequence[str], scores: Sequence[float] | None) -> TrainExample:
        config, judgments = self.config, self.wanted[qid]
        top = list(docids[: config.depth])
        top_scores = list(scores[: config.depth]) if scores is not None else [None] * len(top)
        score_of = dict(zip(top, top_scores))
        positives = [Candidate(d, score_of.get(d)) for d in judgments.positives]
        self.stats.positives_not_retrieved += sum(d not in score_of for d in judgments.positives)
        retrieved = [c.score for c in positives if c.score is not None]
        dropped: set[str] = set()
        negatives = self._negatives(top, top_scores, judgments.judged, max(retrieved, default=None), dropped)
        if not negatives:
            self.stats.no_mined_negatives += 1
        if config.random_negatives:
            # Margin-dropped passages are likely positives: never drawn back in as random negatives.
            extra = self._random(qid, judgments.judged | dropped | {c.docid for c in negatives})
            self.stats.random_negatives += len(extra)
            negatives += extra
        if config.teacher:
            fill_teacher_scores(positives + negatives, top_scores)
        self.stats.queries += 1
        self.stats.negatives += len(negatives)
        return TrainExample(qid, self.queries[qid], positives, negatives)

    def _negatives(
        self, top: list[str], scores: list, judged: set[str], best: float | None, dropped: set[str]
    ) -> list[Candidate]:
        config = self.config
        start, end = config.rank_range
        margin = None if best is None or config.score_margin is None else best - config.score_margin
        out: list[Candidate] = []
        for rank, (docid, score) in enumerate(zip(top, scores), 1):
            if config.max_negatives is not None and len(out) >= config.max_negatives:
                break
            if rank < start or docid in judged:
                continue
            if end is not None and rank > end:
                break
            if margin is not None and score >= margin:
                dropped.add(docid)  # likely an unjudged positive
                continue
            out.append(Candidate(docid, score))
        self.stats.margin_dropped += len(dropped)
        return out

    def _random(self, qid: str, exclude: set[str]) -> list[Candidate]:
        """K corpus ids outside `exclude`, drawn from a generator seeded by (seed, qid) alone."""
        ids, want = self.corpus_ids, self.config.random_negatives
        rng = random.Random(f"{self.config.seed}\t{qid}")  # str seeds hash with SHA-512: stable across runs
        if len(ids) <= 4 * (want + len(exclude)):
            pool = [d for d in ids if d not in exclude]  # a small corpus: sample the whole remainder
            return [Candidate(d) for d in rng.sample(pool, min(want, len(pool)))]
        chosen: dict[str, None] = {}
        while len(chosen) < want:  # rejection sampling: at least 3 of 4 draws are usable here
            docid = ids[rng.randrange(len(ids))]
            if docid not in exclude:
                chosen[docid] = None
        return [Candidate(d) for d in chosen]


def fill_teacher_scores(candidates: list[Candidate], run_scores: Sequence[float | None]) -> None:
    """Give every unscored candidate (a positive the run missed, a random negative) the run's lowest score for
    the query: the run ranked it below everything it retrieved, and that is all the teacher knows of it."""
    known = [s for s in run_scores if s is not None]
    floor = min(known) if known else 0.0
    for candidate in candidates:
        if candidate.score is None:
            candidate.score = floor


def mine_blocks(blocks: Iterable[RunBlock], miner: Miner, run_path: str | None = None) -> Iterator[TrainExample]:
    """Examples in the blocks' order (lazily), then the judged queries that no block held."""
    seen: set[str] = set()
    for block in blocks:
        if block.scores is None and miner.config.score_margin is not None:
            raise InputError(run_path or "run", "--score-margin needs scores, and an MS MARCO run has ranks only")
        if block.scores is None and miner.config.teacher:
            raise InputError(run_path or "run", "--teacher needs scores, and an MS MARCO run has ranks only")
        seen.add(block.qid)
        if block.qid not in miner.wanted:
            miner.stats.run_queries_skipped += 1
            continue
        yield miner.mine(block.qid, block.docids, block.scores)
    for qid in miner.wanted:
        if qid not in seen:
            miner.stats.not_in_run += 1
            yield miner.mine(qid, [], [])


# -- candidates from an index ---------------------------------------------------------------------------------
def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _dense_blocks(index, encoder, queries: list[tuple[str, str]], depth: int) -> Iterator[RunBlock]:
    for batch in _batches(queries, INDEX_BATCH):
        scores, rows = index.search(encoder.encode_queries([text for _, text in batch]), depth)
        for qid, docids, values in index.rankings([qid for qid, _ in batch], scores, rows):
            yield RunBlock(qid, docids, values)


def _bm25_blocks(index, config: MineConfig, queries: list[tuple[str, str]]) -> Iterator[RunBlock]:
    for batch in _batches(queries, INDEX_BATCH):
        qids, texts = [q for q, _ in batch], [t for _, t in batch]
        for qid, docids, values in index.search(
            qids, texts, config.depth, config.bm25.k1, config.bm25.b, config.bm25.threads
        ):
            yield RunBlock(qid, docids, values)


def _lucene_ids(index) -> list[str]:
    """Every external id of a Lucene index (for random negatives without --corpus)."""
    searcher = index.searcher
    docs = (searcher.doc(i) for i in range(searcher.num_docs))
    return [doc.docid() for doc in docs if doc is not None]


def _warn_unindexed(config: MineConfig, contains: Callable[[str], bool], partial: bool = False) -> None:
    check_qrels_documents(config.qrels, config.formats.qrels_format, ", ".join(config.index or []), contains, partial)


def index_candidates(config: MineConfig, queries: list[tuple[str, str]]) -> tuple[Iterator[RunBlock], list | None]:
    """(blocks of search results, the index's document ids when random negatives need them)."""
    need_ids = config.random_negatives > 0 and not config.corpus
    if is_dense_set(config.index):
        index = open_dense(config.index)
        runtime = config.dense.runtime.resolve()
        choose_search_backend(index, config.dense.search_backend, runtime.device, False, config.dense.search_shard_rows)
        encoder = query_encoder(index, config.dense.model, runtime, config.dense.batch_size)
        _warn_unindexed(config, set(index.docids.tolist()).__contains__, index.meta.get("dry_run", False))
        ids = index.docids.tolist() if need_ids else None
        return _dense_blocks(index, encoder, queries, config.depth), ids
    refuse_dense_search_options(config.index[0], config.dense.search_backend, config.dense.search_shard_rows)
    index = BM25Index(config.index[0])
    _warn_unindexed(config, index.contains)
    return _bm25_blocks(index, config, queries), _lucene_ids(index) if need_ids else None


# -- the command ----------------------------------------------------------------------------------------------
def _check_config(config: MineConfig) -> None:
    if (config.run is None) == (config.index is None):
        raise SimlmError("give exactly one of --run (a run file) or --index (an index directory to search)")
    if config.random_negatives and not config.corpus and config.index is None:
        raise SimlmError("--random-negatives needs the corpus ids: give --corpus (or mine with --index)")


def _corpus_ids(config: MineConfig) -> list[str] | None:
    if not config.random_negatives or not config.corpus:
        return None
    return [passage.id for passage in iter_corpus(config.corpus, config.corpus_format)]


def run_mine(config: MineConfig) -> dict:
    """Mine, write the training file atomically, print the summary; returns the summary."""
    started = time.perf_counter()
    check_output_file(
        config.output,
        [config.queries, config.qrels, config.run, *(config.index or []), config.corpus, config.dense.model],
    )
    _check_config(config)
    queries = read_queries(config.queries, config.formats.queries_format)
    qrels = read_qrels(config.qrels, config.formats.qrels_format)
    wanted, without_positive = training_queries(qrels, queries, config.min_relevance)
    if not wanted:
        raise InputError(config.qrels, f"no query has a document of grade >= {config.min_relevance} (--min-relevance)")
    ids = _corpus_ids(config)
    if config.run is not None:
        blocks = iter_run_blocks(config.run, config.run_format)
    else:
        todo = [(qid, queries[qid]) for qid in wanted]
        blocks, index_ids = index_candidates(config, todo[:DRY_RUN_QUERIES] if config.dry_run else todo)
        ids = ids if ids is not None else index_ids
    miner = Miner(config, queries, wanted, ids)
    miner.stats.qrels_queries_without_positive = without_positive
    examples = mine_blocks(blocks, miner, config.run)
    if config.dry_run:
        examples = itertools.islice(examples, DRY_RUN_QUERIES)
    with atomic_output(config.output) as handle:
        for example in examples:
            write_example(handle, example)
    summary = miner.stats.summary() | {"seconds": round(time.perf_counter() - started, 3)}
    info(_describe(summary, config))
    return summary


def _describe(summary: dict, config: MineConfig) -> str:
    text = (
        f"mined {summary['queries']:,} queries -> {config.output}: {summary['mean_negatives']:.2f} negatives per "
        f"query ({summary['random_negatives']:,} random), {summary['queries_without_retrieved_negatives']:,} "
        f"with no retrieved negative, {summary['positives_not_retrieved']:,} positives not retrieved in the top "
        f"{config.depth}, {summary['margin_dropped']:,} negatives dropped by the score margin"
    )
    if summary["queries_not_in_run"]:
        text += f"; {summary['queries_not_in_run']:,} judged queries were not in the run (no mined negatives)"
    if summary["run_queries_skipped"]:
        text += f"; {summary['run_queries_skipped']:,} run queries without a positive skipped"
    if summary["qrels_queries_without_positive"]:
        text += f"; {summary['qrels_queries_without_positive']:,} judged queries without a positive skipped"
    return text
