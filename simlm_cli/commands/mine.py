"""`simlm mine`: hard negatives for training queries, from a run or an index, streamed into a training file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from simlm_cli.commands import options
from simlm_cli.device import Backend, Precision
from simlm_cli.index import SearchBackend
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.queries import QueriesFormat
from simlm_cli.io.runs import RunFormat


@options.bm25_options("--index (BM25): k1.", "--index (BM25): b.", "--index (BM25): search threads.")
def mine(
    queries: str = typer.Option(
        None, "--queries", "-q", help="(required) Training queries: BEIR queries.jsonl or TSV (.gz ok)."
    ),
    qrels: str = typer.Option(None, "--qrels", help="(required) Training judgments (BEIR TSV or TREC qrels)."),
    output: Path = typer.Option(
        None, "--output", "-o", help="(required) Training file to write (JSONL, .gz ok; atomic)."
    ),
    run: str = typer.Option(
        None, "--run", "-r", help="TREC or MS MARCO run of the training queries, grouped by query (streamed)."
    ),
    index: list[Path] = typer.Option(
        None,
        "--index",
        "-i",
        help="Or: an index directory to search (dense or BM25); repeat for a dense index's parts.",
    ),
    run_format: RunFormat = typer.Option(RunFormat.auto, "--run-format", help="Force the run format."),
    depth: int = typer.Option(200, "--depth", min=1, help="Candidates considered per query (the top of the run)."),
    min_relevance: int = typer.Option(
        1, "--min-relevance", help="Grade >= this is a positive; judged documents below it are never negatives."
    ),
    rank_range: str = typer.Option(
        None, "--rank-range", help="Keep negatives ranked START:END (1-based, inclusive), e.g. 3:200."
    ),
    score_margin: float = typer.Option(
        None, "--score-margin", min=0.0, help="Drop negatives scoring within this of the best retrieved positive."
    ),
    max_negatives: int = typer.Option(None, "--max-negatives", min=0, help="Keep at most N, best-ranked first."),
    random_negatives: int = typer.Option(
        0, "--random-negatives", min=0, help="Add K random corpus passages per query (score null)."
    ),
    corpus: str = typer.Option(None, "--corpus", "-c", help="Corpus whose ids random negatives come from."),
    corpus_format: CorpusFormat = options.CorpusFormatOpt,
    seed: int = typer.Option(42, "--seed", help="Random negatives are a function of the seed and the query id."),
    teacher: bool = typer.Option(
        False,
        "--teacher",
        help="Keep the run's scores as teacher scores for `simlm distill` (e.g. of a `simlm fuse` run): a positive "
        "the run missed, or a random negative, gets the query's lowest run score.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Also print the summary as one JSON object on stdout."),
    model: str = typer.Option(None, "--model", "-m", help="--index (dense): encode queries with this model."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="--index (dense): queries per forward pass."),
    device: str = options.Device,
    search_backend: SearchBackend = options.SearchBackendOpt,
    search_shard_rows: int = options.SearchShardRows,
    precision: Precision = options.PrecisionOpt,
    backend: Backend = options.BackendOpt,
    queries_format: QueriesFormat = options.QueriesFormatOpt,
    qrels_format: QrelsFormat = options.QrelsFormatOpt,
    dry_run: bool = options.DryRun,
    *,
    bm25: dict[str, Any],
) -> None:
    """Write one training line per judged query: its positives and hard negatives mined from a run or an index."""
    options.require(("--queries", queries), ("--qrels", qrels), ("--output", output))
    from simlm_cli.pipeline.mine import MineConfig, parse_rank_range, run_mine

    config = MineConfig(
        queries=str(queries), qrels=str(qrels), output=str(output), run=str(run) if run else None,
        index=[str(path) for path in index] if index else None, run_format=run_format, depth=depth, min_relevance=min_relevance,
        rank_range=parse_rank_range(rank_range), score_margin=score_margin, max_negatives=max_negatives,
        random_negatives=random_negatives, corpus=str(corpus) if corpus else None, corpus_format=corpus_format,
        seed=seed, dry_run=dry_run, model=model, device=device, precision=precision, backend=backend, batch_size=batch_size,
        search_backend=search_backend, search_shard_rows=search_shard_rows,
        **bm25, queries_format=queries_format, qrels_format=qrels_format, teacher=teacher,
    )  # fmt: skip
    summary = run_mine(config)
    if json_out:
        typer.echo(json.dumps(summary))


register = options.registrar(
    mine,
    "Run + qrels -> training file of hard negatives.",
    options.example("simlm mine --run bm25.trec --qrels qrels/train.tsv --queries queries.jsonl --output train.jsonl"),
)
