"""`simlm distill`: a bi-encoder student taught by the re-ranker's scores (Retriever_distill)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simlm_cli.commands import options
from simlm_cli.io.corpus import CorpusFormat


@options.trainer_options
@options.retriever_options
def distill(
    train_file: Path = typer.Option(
        None, "--train-file", "-t", help="Training JSONL with a teacher score on every passage (`simlm rerank score`)."
    ),
    corpus: Path = options.Corpus,
    output: Path = options.OutputDir,
    model: str = typer.Option(
        None, "--model", "-m", help="The student's initialisation (e.g. Retriever2). Default: the embedded MiniLM."
    ),
    corpus_format: CorpusFormat = options.CorpusFormatOpt,
    pooling: str = typer.Option(
        "model",
        "--pooling",
        autocompletion=options.complete_trainer_pooling,
        help="cls, mean, or model (the student's own; cls if none).",
    ),
    negatives: int = typer.Option(23, "--negatives", "-n", help="Negatives per query with teacher scores (paper: 23)."),
    alpha: float = typer.Option(0.2, "--alpha", help="Weight of the contrastive loss added to the KL term."),
    teacher_temperature: float = typer.Option(
        1.0, "--teacher-temperature", help="The teacher's scores are divided by this before the softmax."
    ),
    temperature: float = typer.Option(0.02, "--temperature", help="Student scores are cosine / temperature."),
    loss: str = typer.Option(
        "paper",
        "--loss",
        autocompletion=options.complete_loss,
        help="Contrastive variant: paper or full (see `simlm train`).",
    ),
    batch_size: int = options.RetrieverBatchSize,
    *,
    retriever: dict[str, Any],
    trainer: dict[str, Any],
) -> None:
    """Train a bi-encoder on KL(teacher || student) over 1 positive + n negatives, plus alpha x contrastive.

    The teacher is the cross-encoder's score of each (query, passage) in the training file.
    """
    from simlm_cli.console import info
    from simlm_cli.errors import SimlmError
    from simlm_cli.pipeline.train import RetrieverSpec, train_retriever

    if alpha < 0:
        raise SimlmError("--alpha must be 0 or more")
    if teacher_temperature <= 0:
        raise SimlmError("--teacher-temperature must be positive")
    spec = RetrieverSpec(
        train_file=str(train_file) if train_file else "", pooling=None if pooling == "model" else pooling,
        negatives=negatives, temperature=temperature, loss=loss, alpha=alpha,
        teacher_temperature=teacher_temperature, **retriever,
    )  # fmt: skip
    config = options.trainer_config(
        "distill", train_file, corpus, output, trainer, model=model, corpus_format=corpus_format, batch_size=batch_size
    )
    train_retriever(spec, config, log=info)


register = options.registrar(
    distill,
    "Teacher-scored training file -> distilled bi-encoder.",
    options.example("simlm distill -t scored.jsonl -c corpus.jsonl --model DIR --output student"),
)
