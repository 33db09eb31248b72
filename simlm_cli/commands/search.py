"""`simlm search`: queries -> a run, from a dense (faiss) or BM25 (Lucene) index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simlm_cli.commands import options
from simlm_cli.device import Backend, Precision
from simlm_cli.index import SearchBackend
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.queries import QueriesFormat
from simlm_cli.io.runs import RunFormat


@options.bm25_options(
    "BM25 k1 (Anserini's BEIR default 0.9).", "BM25 b (Anserini's BEIR default 0.4).", "BM25: search threads."
)
def search(
    index: list[Path] = typer.Option(
        ...,
        "--index",
        "-i",
        help="Index directory from `simlm index` (dense or --bm25). Repeat for the parts of a "
        "dense index (e.g. built with --partial): searched as one, top-k merged exactly.",
    ),
    queries: str = typer.Option(..., "--queries", "-q", help="BEIR queries.jsonl or TSV qid<TAB>text (.gz ok)."),
    output: str = typer.Option(None, "--output", "-o", help="Run file (.tsv: MS MARCO format). Default: stdout."),
    qrels: str = typer.Option(None, "--qrels", help="Search only the queries judged in these qrels."),
    k: int = typer.Option(1000, "--k", "-k", min=1, help="Documents per query."),
    run_format: RunFormat = typer.Option(RunFormat.auto, "--format", help="trec, msmarco, or auto (by extension)."),
    tag: str = options.tag_option("simlm"),
    model: str = typer.Option(
        None, "--model", "-m", help="Dense: encode queries with this model instead of the index's."
    ),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Queries per forward pass."),
    device: str = options.Device,
    search_backend: SearchBackend = options.SearchBackendOpt,
    search_shard_rows: int = options.SearchShardRows,
    precision: Precision = typer.Option(
        Precision.auto,
        "--precision",
        help="Dense: the query encoder's precision (default auto, as below), whatever precision built the index. "
        + str(options.PrecisionOpt.help),
    ),
    backend: Backend = options.BackendOpt,
    gpu: bool = typer.Option(False, "--gpu", help="Dense: search on the GPU with faiss-gpu; fails if none is present."),
    nprobe: int = typer.Option(None, "--nprobe", min=1, help="IVF-PQ: lists probed (default: as built)."),
    ef_search: int = typer.Option(None, "--ef-search", min=1, help="HNSW: search breadth (default: as built)."),
    queries_format: QueriesFormat = options.QueriesFormatOpt,
    qrels_format: QrelsFormat = options.QrelsFormatOpt,
    dry_run: bool = options.DryRun,
    *,
    bm25: dict[str, Any],
) -> None:
    """Retrieve the top-k documents for each query and write a TREC or MS MARCO run."""
    from simlm_cli.pipeline.search import SearchConfig, run_search

    config = SearchConfig(
        index=[str(path) for path in index], queries=str(queries), output=output, qrels=str(qrels) if qrels else None, k=k,
        run_format=run_format, tag=tag, model=model, device=device, precision=precision, backend=backend, batch_size=batch_size,
        gpu=gpu, search_backend=search_backend, search_shard_rows=search_shard_rows, nprobe=nprobe,
        ef_search=ef_search, **bm25, dry_run=dry_run, queries_format=queries_format,
        qrels_format=qrels_format,
    )  # fmt: skip
    run_search(config)


register = options.registrar(
    search,
    "Queries -> run (TREC or MS MARCO), dense or BM25.",
    options.example("simlm search --index idx --queries queries.jsonl --output run.trec"),
)
