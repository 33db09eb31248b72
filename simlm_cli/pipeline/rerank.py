"""`simlm rerank`: train the cross-encoder re-ranker, re-rank runs with it, and write its teacher scores.

Runs and training files are streamed: a few queries' pairs are scored at a time (length-sorted into batches),
so memory holds the corpus and the query set, never the whole run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from simlm_cli.device import Precision, Runtime, resolve_runtime
from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import CorpusFormat, Passage, iter_corpus
from simlm_cli.io.files import atomic_output, check_output_file, count_lines
from simlm_cli.io.queries import QueriesFormat
from simlm_cli.io.runs import Ranking, RunBlock, RunFormat, format_for_output, iter_run_blocks, write_run
from simlm_cli.io.train_file import Candidate, TrainExample, iter_train_file, read_train_file, write_example
from simlm_cli.training.trainer import TrainConfig

# Pairs gathered (over whole queries) before scoring: enough for several full batches to length-sort.
PENDING_BATCHES = 4
DRY_RUN_QUERIES = 4
T = TypeVar("T")


def load_passages(path: str | Path, fmt: CorpusFormat = CorpusFormat.auto) -> dict[str, Passage]:
    """The whole corpus, id -> passage (re-ranking looks passages up at random)."""
    return {p.id: p for p in iter_corpus(path, fmt)}


# -- training -----------------------------------------------------------------------------------------------------
def train_reranker(
    train_file: str | Path,
    config: TrainConfig,
    group_size: int = 8,
    log: Callable[[str], None] = print,
    cpu_batch: int = 4,
) -> Path:
    """Train a cross-encoder on a training file's groups with the shared trainer; returns the output directory.

    `config.batch_size` counts queries (each brings `group_size` pairs); None: `cpu_batch` on CPU, 16 on GPU.
    """
    from simlm_cli.models.encoder import load_tokenizer
    from simlm_cli.models.settings import resolve_model_path
    from simlm_cli.training.cross_encoder import CrossEncoder, RerankData, usable_examples
    from simlm_cli.training.trainer import Trainer

    if group_size < 2:
        raise SimlmError("--group-size must be at least 2 (one positive and one negative)")
    if config.batch_size is None:
        on_cpu = resolve_runtime(config.device, config.precision).device_type == "cpu"
        config.batch_size = cpu_batch if on_cpu else 16
    config.objective_options.update(train_file=str(train_file), group_size=group_size)
    model_path = resolve_model_path(config.model)
    tokenizer = load_tokenizer(model_path)

    def data(c: TrainConfig) -> RerankData:
        passages = load_passages(c.corpus, CorpusFormat(c.corpus_format))
        parsed = read_train_file(train_file, corpus_ids=passages)
        if skipped := parsed.describe_skipped(0):
            log(skipped)
        examples = usable_examples(parsed.examples, train_file, log)
        if c.dry_run:
            examples = examples[: c.max_passages]
        return RerankData(examples, passages, tokenizer, group_size, c.max_length, c.seed)

    def build(path: str, tok: Any, build_log: Callable[[str], None]) -> CrossEncoder:
        # Logged here, once the data has been read: a bad training file's error is then the only line.
        build_log(
            f"re-ranker: cross-encoder from {config.model or path}, groups of 1 positive + {group_size - 1} "
            f"negatives, listwise loss, pairs of <= {config.max_length} tokens"
        )
        return CrossEncoder(path, tok, group_size, config.max_length, build_log)

    return Trainer(config, build, tokenizer, model_path, log=log, data=data).run()


# -- scoring ------------------------------------------------------------------------------------------------------
class Reranker:
    """A trained cross-encoder for inference: scores (query, passage) pairs in length-sorted batches."""

    def __init__(
        self,
        model: str,
        runtime: Runtime,
        batch_size: int = 32,
        max_length: int | None = None,
        log: Callable[[str], None] = print,
    ):
        import torch

        from simlm_cli.models.encoder import load_tokenizer
        from simlm_cli.models.settings import resolve_model_path
        from simlm_cli.training.cross_encoder import load_sequence_classifier, reranker_max_length

        if batch_size < 1:
            raise SimlmError("--batch-size must be at least 1")
        path = resolve_model_path(model)
        self.runtime = runtime
        self.batch_size = batch_size
        self.max_length = max_length or reranker_max_length(path)
        self.tokenizer = load_tokenizer(path)
        self.model = load_sequence_classifier(path, log, require_head=True).to(runtime.device).eval()
        self._torch = torch

    def score(
        self, queries: Sequence[str], texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """One raw logit per (queries[i], texts[i]), in input order."""
        from simlm_cli.training.cross_encoder import pad_pairs, tokenize_pairs

        torch = self._torch
        out = np.empty(len(queries), dtype=np.float32)
        if not len(queries):
            return out
        tokens = tokenize_pairs(self.tokenizer, queries, texts, self.max_length)
        lengths = np.fromiter((len(x) for x in tokens["input_ids"]), dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")  # similar lengths together: little padding
        with torch.inference_mode(), self.runtime.autocast():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = {k: v.to(self.runtime.device) for k, v in pad_pairs(self.tokenizer, tokens, rows).items()}
                out[rows] = self.model(**batch).logits[:, 0].float().cpu().numpy()
                if on_batch is not None:
                    on_batch(len(rows))
        return out


# -- runs -----------------------------------------------------------------------------------------------------------
@dataclass
class RerankRunConfig:
    model: str
    run: str
    queries: str
    corpus: str
    output: str
    depth: int = 100
    batch_size: int = 32
    run_format: RunFormat = RunFormat.auto
    output_format: RunFormat = RunFormat.auto
    corpus_format: CorpusFormat = CorpusFormat.auto
    tag: str = "simlm-rerank"
    device: str = "auto"
    precision: Precision = Precision.auto
    dry_run: bool = False
    keep_tail: bool = True  # documents below --depth follow the re-ranked head in the run's order
    queries_format: QueriesFormat = QueriesFormat.auto


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
        top = RunBlock(block.qid, block.docids[: c.depth], None, block.line, block.lines[: c.depth])
        for docid, lineno in zip(top.docids, top.lines):
            if docid not in passages:
                raise InputError(c.run, f"document {docid!r} is not in the corpus {c.corpus}", line=lineno)
        yield top, len(block.lines), block.docids[c.depth :] if c.keep_tail else []


def _chunks(items: Iterable[T], size: Callable[[T], int], limit: int) -> Iterator[list[T]]:
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
    reranker: Reranker,
    queries: dict[str, str],
    passages: dict[str, Passage],
    advance: Callable[[int, int], None],
) -> Iterator[Ranking]:
    """Re-scored rankings, scoring the pairs of several queries at once."""
    for chunk in _chunks(blocks, lambda item: len(item[0].docids), PENDING_BATCHES * reranker.batch_size):
        yield from _score_blocks(chunk, reranker, queries, passages, advance)


def _score_blocks(
    blocks: list[tuple[RunBlock, int, list[str]]],
    reranker: Reranker,
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
    from simlm_cli.console import info, progress
    from simlm_cli.io.queries import read_queries

    if c.depth < 1:
        raise SimlmError("--depth must be at least 1")
    check_output_file(c.output)
    runtime = resolve_runtime(c.device, c.precision)
    queries = read_queries(c.queries, c.queries_format)
    passages = load_passages(c.corpus, c.corpus_format)
    # Check the first query before loading the model: a wrong file then fails fast, its error the only line.
    blocks = _checked_blocks(c, queries, passages)
    first = next(blocks, None)
    reranker = Reranker(c.model, runtime, c.batch_size, log=info)
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


# -- teacher scores -------------------------------------------------------------------------------------------------
@dataclass
class ScoreConfig:
    model: str
    train_file: str
    corpus: str
    output: str
    max_negatives: int | None = None
    batch_size: int = 32
    corpus_format: CorpusFormat = CorpusFormat.auto
    device: str = "auto"
    precision: Precision = Precision.auto
    dry_run: bool = False  # score only the first DRY_RUN_QUERIES usable queries


_EMPTY = object()


def _scored(examples: list[TrainExample], reranker: Reranker, passages: dict[str, Passage]) -> Iterator[TrainExample]:
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
    from simlm_cli.console import info, progress

    if c.max_negatives is not None and c.max_negatives < 0:
        raise SimlmError("--max-negatives must be 0 or more")
    check_output_file(c.output)
    runtime = resolve_runtime(c.device, c.precision)
    passages = load_passages(c.corpus, c.corpus_format)
    examples = iter_train_file(c.train_file, corpus_ids=passages)
    # Read the first line before loading the model: a wrong file then fails fast, its error the only line.
    first = next(examples, _EMPTY)
    if first is _EMPTY:
        raise InputError(c.train_file, "no training queries")
    reranker = Reranker(c.model, runtime, c.batch_size, log=info)
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
        for chunk in _chunks(usable(), _pairs, PENDING_BATCHES * reranker.batch_size):
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
