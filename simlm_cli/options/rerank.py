"""`simlm rerank run` and `rerank score`'s configs: a cross-encoder re-scores a run, or a training file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simlm_cli.defaults import PAIRS_PER_BATCH
from simlm_cli.dry_run import RERANK_QUERIES
from simlm_cli.flags import flag, group
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.io.queries import QueriesFormat
from simlm_cli.io.runs import RunFormat
from simlm_cli.options.shared import (
    Inference,
    corpus_format_flag,
    dry_run_flag,
    queries_format_flag,
    run_format_flag,
    tag_flag,
)


def _model() -> Any:
    return flag("--model", "-m", help="Re-ranker directory (from `simlm rerank train`).")


def _batch_size() -> Any:
    return flag("--batch-size", default=PAIRS_PER_BATCH, min=1, help="(query, passage) pairs per forward pass.")


@dataclass(frozen=True, kw_only=True)
class RerankRunConfig:
    model: str = _model()
    run: str = flag("--run", "-r", help="Run to re-rank (TREC or MS MARCO, .gz ok).")
    queries: str = flag("--queries", "-q", help="BEIR queries.jsonl or TSV qid<TAB>text (.gz ok).")
    corpus: str = flag("--corpus", "-c", help="The run's passages (any corpus format, .gz ok).")
    output: str = flag("--output", "-o", help="The re-ranked run (.tsv: MS MARCO format).")
    depth: int = flag(
        "--depth", "-k", default=100, min=1, help="Re-rank each query's top N documents (the re-ranker's pairs)."
    )
    # documents below --depth follow the re-ranked head in the run's order
    keep_tail: bool = flag(
        "--keep-tail/--drop-tail",
        default=True,
        help="Documents below --depth follow the re-ranked ones in the run's order (scores below the head's, falling "
        "by 1 per rank), so recall at depths past N stays the run's; --drop-tail leaves them out.",
    )
    batch_size: int = _batch_size()
    run_format: RunFormat = run_format_flag("The input run's format (auto: detect).")
    output_format: RunFormat = flag(
        "--output-format",
        default=RunFormat.auto,
        help="trec (with the new scores), msmarco, or auto (by extension).",
    )
    corpus_format: CorpusFormat = corpus_format_flag()
    tag: str = tag_flag("simlm-rerank")
    runtime: Inference = group(Inference)
    queries_format: QueriesFormat = queries_format_flag()
    dry_run: bool = dry_run_flag(f"Re-rank only the run's first {RERANK_QUERIES} queries.")


@dataclass(frozen=True, kw_only=True)
class ScoreConfig:
    model: str = _model()
    train_file: str = flag("--train-file", "-t", help="Training JSONL (from `simlm mine`).")
    corpus: str = flag("--corpus", "-c", help="The passages it names (any corpus format, .gz ok).")
    output: str = flag("--output", "-o", help="The training file with teacher scores (JSONL).")
    max_negatives: int | None = flag(
        "--max-negatives", default=None, min=0, help="Keep only each query's first N negatives. Default: all."
    )
    batch_size: int = _batch_size()
    corpus_format: CorpusFormat = corpus_format_flag()
    runtime: Inference = group(Inference)
    # score only the first RERANK_QUERIES usable queries
    dry_run: bool = dry_run_flag(f"Score only the file's first {RERANK_QUERIES} usable queries.")
