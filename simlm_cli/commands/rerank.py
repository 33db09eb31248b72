"""`simlm rerank train|run|score`: the SimLM cross-encoder re-ranker and the teacher scores it gives `distill`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simlm_cli.commands import options
from simlm_cli.commands.config import ConfiguredCommand
from simlm_cli.flags import command_from
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.options.rerank import RerankRunConfig, ScoreConfig

app = typer.Typer(
    help="Cross-encoder re-ranker: train it (listwise loss), re-rank runs, score training files for `simlm distill`.",
    no_args_is_help=True,
)


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


def run(config: RerankRunConfig) -> None:
    """Re-rank a run: re-score each query's top --depth documents with the cross-encoder, best first.

    The run is streamed one query at a time; the output is written atomically.
    """
    from simlm_cli.pipeline.rerank import rerank_run

    rerank_run(config)


def score(config: ScoreConfig) -> None:
    """Write the teacher scores for `simlm distill` into a copy of a training file.

    Every positive's and negative's score becomes the re-ranker's raw logit; queries with no positive are left out
    (and counted). The file is streamed and written atomically.
    """
    from simlm_cli.pipeline.teacher import score_train_file

    score_train_file(config)


app.command(
    cls=ConfiguredCommand,
    name="run",
    short_help="Re-rank the top-k of a run.",
    epilog=options.example(
        "simlm rerank run --model reranker --run run.trec --queries queries.jsonl --corpus corpus.jsonl --output reranked.trec"
    ),
)(command_from(RerankRunConfig, run))
app.command(
    cls=ConfiguredCommand,
    name="score",
    short_help="Teacher scores for a training file (for `simlm distill`).",
    epilog=options.example("simlm rerank score --model reranker -t train.jsonl -c corpus.jsonl --output scored.jsonl"),
)(command_from(ScoreConfig, score))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rerank", short_help="Cross-encoder re-ranker: train, run, score.")
