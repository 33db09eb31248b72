"""`simlm rerank train|run|score`: the SimLM cross-encoder re-ranker and the teacher scores it gives `distill`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simlm_cli.commands import options
from simlm_cli.commands.config import ConfiguredCommand
from simlm_cli.device import Backend, Precision
from simlm_cli.dry_run import RERANK_QUERIES
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.io.queries import QueriesFormat
from simlm_cli.io.runs import RunFormat

app = typer.Typer(
    help="Cross-encoder re-ranker: train it (listwise loss), re-rank runs, score training files for `simlm distill`.",
    no_args_is_help=True,
)

InferenceBatch = typer.Option(32, "--batch-size", min=1, help="(query, passage) pairs per forward pass.")
RerankerModel = typer.Option(None, "--model", "-m", help="(required) Re-ranker directory (from `simlm rerank train`).")


@app.command(
    cls=ConfiguredCommand,
    name="train",
    short_help="Training file -> listwise cross-encoder re-ranker.",
    epilog=options.example("simlm rerank train -t train.jsonl -c corpus.jsonl --model DIR --output reranker"),
)
@options.trainer_options
def train(
    train_file: str = options.TrainFile,
    corpus: str = options.Corpus,
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="Output directory: the re-ranker (HF sequence classifier; loads in sentence-transformers' "
        "CrossEncoder), simlm_reranker.json, checkpoints/, train_log.jsonl, loss.png.",
    ),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="HF encoder directory or hub name to start from (a one-score head is added if absent). "
        "Default: sentence-transformers/all-MiniLM-L6-v2 (embedded weights).",
    ),
    corpus_format: CorpusFormat = options.CorpusFormatOpt,
    group_size: int = typer.Option(
        8,
        "--group-size",
        "-n",
        min=2,
        help="Passages per query group: 1 positive + n-1 negatives, re-drawn each epoch (paper: 64 from the top 200). "
        "Queries with fewer negatives repeat some; queries with none are skipped and counted.",
    ),
    backprop_top: int = typer.Option(
        None,
        "--backprop-top",
        min=2,
        help="Back-propagate through each group's positive + its M-1 negatives the model scores highest (found by "
        "a pass without gradients, dropout off), as the authors' code does (paper: 16 of 64). Default: the whole "
        "group.",
    ),
    max_length: int = typer.Option(
        None,
        "--max-length",
        help="Tokens per (query, passage) pair; only passages are cut. Default: the model's own (the length a "
        "re-ranker was trained with, simlm_reranker.json), else 192 (the paper's).",
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        help="Queries per process per micro-step (each brings --group-size pairs). Default: 4 on CPU, 16 on GPU.",
    ),
    *,
    trainer: dict[str, Any],
) -> None:
    """Train a cross-encoder re-ranker with the listwise loss on a training file from `simlm mine`.

    Each query's group (1 positive + n-1 hard negatives) is scored pair by pair; the loss is the cross-entropy of
    the group's scores with the positive as the target. Under torchrun each process trains on its share (DDP).
    """
    from simlm_cli.console import info
    from simlm_cli.pipeline.train import train_reranker

    config = options.trainer_config(
        "rerank",
        train_file,
        corpus,
        output,
        trainer,
        model=model,
        corpus_format=corpus_format,
        max_length=max_length,
        batch_size=batch_size,
    )
    train_reranker(train_file, config, group_size, log=info, backprop_top=backprop_top)


@app.command(
    cls=ConfiguredCommand,
    name="run",
    short_help="Re-rank the top-k of a run.",
    epilog=options.example(
        "simlm rerank run --model reranker --run run.trec --queries queries.jsonl --corpus corpus.jsonl --output reranked.trec"
    ),
)
def run(
    model: str = RerankerModel,
    run_file: str = typer.Option(None, "--run", "-r", help="(required) Run to re-rank (TREC or MS MARCO, .gz ok)."),
    queries: str = typer.Option(
        None, "--queries", "-q", help="(required) BEIR queries.jsonl or TSV qid<TAB>text (.gz ok)."
    ),
    corpus: str = typer.Option(
        None, "--corpus", "-c", help="(required) The run's passages (any corpus format, .gz ok)."
    ),
    output: str = typer.Option(None, "--output", "-o", help="(required) The re-ranked run (.tsv: MS MARCO format)."),
    depth: int = typer.Option(
        100, "--depth", "-k", min=1, help="Re-rank each query's top N documents (the re-ranker's pairs)."
    ),
    keep_tail: bool = typer.Option(
        True,
        "--keep-tail/--drop-tail",
        help="Documents below --depth follow the re-ranked ones in the run's order (scores below the head's, falling "
        "by 1 per rank), so recall at depths past N stays the run's; --drop-tail leaves them out.",
    ),
    batch_size: int = InferenceBatch,
    run_format: RunFormat = typer.Option(RunFormat.auto, "--run-format", help="The input run's format (auto: detect)."),
    output_format: RunFormat = typer.Option(
        RunFormat.auto, "--output-format", help="trec (with the new scores), msmarco, or auto (by extension)."
    ),
    corpus_format: CorpusFormat = options.CorpusFormatOpt,
    tag: str = options.tag_option("simlm-rerank"),
    device: str = options.Device,
    precision: Precision = options.PrecisionOpt,
    backend: Backend = options.BackendOpt,
    queries_format: QueriesFormat = options.QueriesFormatOpt,
    dry_run: bool = options.dry_run_option(f"Re-rank only the run's first {RERANK_QUERIES} queries."),
) -> None:
    """Re-rank a run: re-score each query's top --depth documents with the cross-encoder, best first.

    The run is streamed one query at a time; the output is written atomically.
    """
    options.require(
        ("--model", model), ("--run", run_file), ("--queries", queries), ("--corpus", corpus), ("--output", output)
    )
    from simlm_cli.pipeline.rerank import RerankRunConfig, rerank_run

    config = RerankRunConfig(
        model=model, run=str(run_file), queries=str(queries), corpus=str(corpus), output=str(output), depth=depth,
        batch_size=batch_size, run_format=run_format, output_format=output_format, corpus_format=corpus_format,
        tag=tag, device=device, precision=precision, backend=backend, dry_run=dry_run, keep_tail=keep_tail,
        queries_format=queries_format,
    )  # fmt: skip
    rerank_run(config)


@app.command(
    cls=ConfiguredCommand,
    name="score",
    short_help="Teacher scores for a training file (for `simlm distill`).",
    epilog=options.example("simlm rerank score --model reranker -t train.jsonl -c corpus.jsonl --output scored.jsonl"),
)
def score(
    model: str = RerankerModel,
    train_file: str = typer.Option(None, "--train-file", "-t", help="(required) Training JSONL (from `simlm mine`)."),
    corpus: str = typer.Option(
        None, "--corpus", "-c", help="(required) The passages it names (any corpus format, .gz ok)."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="(required) The training file with teacher scores (JSONL)."
    ),
    max_negatives: int = typer.Option(
        None, "--max-negatives", min=0, help="Keep only each query's first N negatives. Default: all."
    ),
    batch_size: int = InferenceBatch,
    corpus_format: CorpusFormat = options.CorpusFormatOpt,
    device: str = options.Device,
    precision: Precision = options.PrecisionOpt,
    backend: Backend = options.BackendOpt,
    dry_run: bool = options.dry_run_option(f"Score only the file's first {RERANK_QUERIES} usable queries."),
) -> None:
    """Write the teacher scores for `simlm distill` into a copy of a training file.

    Every positive's and negative's score becomes the re-ranker's raw logit; queries with no positive are left out
    (and counted). The file is streamed and written atomically.
    """
    options.require(("--model", model), ("--train-file", train_file), ("--corpus", corpus), ("--output", output))
    from simlm_cli.pipeline.teacher import ScoreConfig, score_train_file

    config = ScoreConfig(
        model=model, train_file=str(train_file), corpus=str(corpus), output=str(output), max_negatives=max_negatives,
        batch_size=batch_size, corpus_format=corpus_format, device=device, precision=precision, backend=backend, dry_run=dry_run,
    )  # fmt: skip
    score_train_file(config)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rerank", short_help="Cross-encoder re-ranker: train, run, score.")
