"""`simlm rerank train|run|score`: the SimLM cross-encoder re-ranker and the teacher scores it gives `distill`."""

from __future__ import annotations

import typer

from simlm_cli.commands import options
from simlm_cli.commands.config import ConfiguredCommand
from simlm_cli.flags import command_from
from simlm_cli.options.rerank import RerankRunConfig, ScoreConfig
from simlm_cli.options.training import RerankTrainConfig

app = typer.Typer(
    help="Cross-encoder re-ranker: train it (listwise loss), re-rank runs, score training files for `simlm distill`.",
    no_args_is_help=True,
)


def train(config: RerankTrainConfig) -> None:
    """Train a cross-encoder re-ranker with the listwise loss on a training file from `simlm mine`.

    Each query's group (1 positive + n-1 hard negatives) is scored pair by pair; the loss is the cross-entropy of
    the group's scores with the positive as the target. Under torchrun each process trains on its share (DDP).
    """
    from simlm_cli.console import info
    from simlm_cli.pipeline.train import train_reranker

    train_reranker(
        config.train_file, config.train_config(), config.group_size, log=info, backprop_top=config.backprop_top
    )


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
    name="train",
    short_help="Training file -> listwise cross-encoder re-ranker.",
    epilog=options.example("simlm rerank train -t train.jsonl -c corpus.jsonl --model DIR --output reranker"),
)(command_from(RerankTrainConfig, train))
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
