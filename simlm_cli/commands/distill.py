"""`simlm distill`: a bi-encoder student taught by the re-ranker's scores (Retriever_distill)."""

from __future__ import annotations

from pathlib import Path

import typer

from simlm_cli.commands import options
from simlm_cli.device import Precision
from simlm_cli.io.corpus import CorpusFormat


def distill(
    train_file: Path = typer.Option(
        None, "--train-file", "-t", help="Training JSONL with a teacher score on every passage (`simlm rerank score`)."
    ),
    corpus: Path = options.Corpus,
    output: Path = options.OutputDir,
    model: str = typer.Option(
        None, "--model", "-m", help="The student's initialisation (e.g. Retriever2). Default: the embedded MiniLM."
    ),
    corpus_format: CorpusFormat = typer.Option(CorpusFormat.auto, "--corpus-format", help="Force the corpus format."),
    pooling: str = typer.Option(
        "model",
        "--pooling",
        autocompletion=options.complete_trainer_pooling,
        help="cls, mean, or model (the student's own; cls if none).",
    ),
    normalize: bool = typer.Option(True, "--normalize/--no-normalize", help="Cosine (L2-normalised) scores."),
    query_max_length: int = typer.Option(32, "--query-max-length", help="Query tokens."),
    passage_max_length: int = typer.Option(144, "--passage-max-length", help="Passage tokens (title + text)."),
    passage_format: str = options.PassageFormat,
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
    max_steps: int = options.MaxSteps,
    epochs: float = options.Epochs,
    batch_size: int = typer.Option(None, "--batch-size", help="Queries per process per micro-step. Default 16 on CPU."),
    grad_accum: int = options.GradAccum,
    lr: float = typer.Option(2e-5, "--lr", help="Peak AdamW learning rate."),
    weight_decay: float = options.WeightDecay,
    warmup_steps: int = options.WarmupSteps,
    max_grad_norm: float = options.MaxGradNorm,
    save_steps: int = options.SaveSteps,
    save_total_limit: int = options.SaveTotalLimit,
    log_steps: int = options.LogSteps,
    seed: int = options.Seed,
    device: str = options.Device,
    precision: Precision = options.PrecisionOpt,
    resume: bool = options.Resume,
    dry_run: bool = options.TrainDryRun,
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
        normalize=normalize, query_max_length=query_max_length, passage_max_length=passage_max_length,
        passage_format=passage_format, negatives=negatives, temperature=temperature, loss=loss, alpha=alpha,
        teacher_temperature=teacher_temperature,
    )  # fmt: skip
    config = options.trainer_config(
        "distill", train_file, corpus, output, model=model, corpus_format=corpus_format, max_steps=max_steps,
        epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr, weight_decay=weight_decay,
        warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, save_steps=save_steps,
        save_total_limit=save_total_limit, log_steps=log_steps, seed=seed, device=device, precision=precision,
        resume=resume, dry_run=dry_run,
    )  # fmt: skip
    train_retriever(spec, config, log=info)


def register(app: typer.Typer) -> None:
    app.command(
        "distill",
        short_help="Teacher-scored training file -> distilled bi-encoder.",
        epilog=options.example("simlm distill -t scored.jsonl -c corpus.jsonl --model DIR --output student"),
    )(distill)
