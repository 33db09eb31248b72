"""`simlm distill`: a bi-encoder student taught by the re-ranker's scores (Retriever_distill)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simlm_cli.commands import options


@options.trainer_options
@options.retriever_options(
    negatives=(23, "Negatives per query with teacher scores (paper: 23)."),
    temperature_help="Student scores are cosine / temperature.",
    loss_help="Contrastive variant: paper or full (see `simlm train`).",
)
def distill(
    train_file: str = typer.Option(
        None, "--train-file", "-t", help="Training JSONL with a teacher score on every passage (`simlm rerank score`)."
    ),
    corpus: str = options.Corpus,
    output: Path = options.OutputDir,
    model: str = typer.Option(
        None, "--model", "-m", help="The student's initialisation (e.g. Retriever2). Default: the embedded MiniLM."
    ),
    alpha: float = typer.Option(0.2, "--alpha", help="Weight of the contrastive loss added to the KL term."),
    teacher_temperature: float = typer.Option(
        1.0, "--teacher-temperature", help="The teacher's scores are divided by this before the softmax."
    ),
    *,
    retriever: dict[str, Any],
    trainer: dict[str, Any],
) -> None:
    """Train a bi-encoder on KL(teacher || student) over 1 positive + n negatives, plus alpha x contrastive.

    The teacher is the cross-encoder's score of each (query, passage) in the training file.
    """
    from simlm_cli.console import info
    from simlm_cli.errors import SimlmError
    from simlm_cli.pipeline.train import train_retriever

    if alpha < 0:
        raise SimlmError("--alpha must be 0 or more")
    if teacher_temperature <= 0:
        raise SimlmError("--teacher-temperature must be positive")
    spec, config = options.retriever_training(
        "distill", (train_file, corpus, output), model, retriever=retriever, trainer=trainer, alpha=alpha,
        teacher_temperature=teacher_temperature,
    )  # fmt: skip
    train_retriever(spec, config, log=info)


register = options.registrar(
    distill,
    "Teacher-scored training file -> distilled bi-encoder.",
    options.example("simlm distill -t scored.jsonl -c corpus.jsonl --model DIR --output student"),
)
