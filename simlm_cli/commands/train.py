"""`simlm train`: fine-tune a bi-encoder retriever on mined hard negatives (Retriever1 / Retriever2)."""

from __future__ import annotations

from pathlib import Path

import typer

from simlm_cli.commands import options
from simlm_cli.device import Precision
from simlm_cli.io.corpus import CorpusFormat


def train(
    train_file: Path = options.TrainFile,
    corpus: Path = options.Corpus,
    output: Path = options.OutputDir,
    model: str = options.Model,
    corpus_format: CorpusFormat = typer.Option(CorpusFormat.auto, "--corpus-format", help="Force the corpus format."),
    pooling: str = typer.Option(
        "cls",
        "--pooling",
        autocompletion=options.complete_trainer_pooling,
        help="cls (the paper's), mean, or model (the model's own).",
    ),
    normalize: bool = typer.Option(True, "--normalize/--no-normalize", help="Cosine (L2-normalised) scores."),
    query_max_length: int = typer.Option(32, "--query-max-length", help="Query tokens."),
    passage_max_length: int = typer.Option(144, "--passage-max-length", help="Passage tokens (title + text)."),
    passage_format: str = options.PassageFormat,
    negatives: int = typer.Option(15, "--negatives", "-n", help="Hard negatives per query (re-sampled each epoch)."),
    temperature: float = typer.Option(0.02, "--temperature", help="Scores are cosine / temperature."),
    loss: str = typer.Option(
        "paper",
        "--loss",
        autocompletion=options.complete_loss,
        help="paper: Eq. 3 (in-batch + hard negatives, positive-passage-vs-negatives terms); full: also the "
        "query-query terms, as the reference implementation.",
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
    """Train a bi-encoder (one shared encoder) with the contrastive loss over 1 positive + n hard negatives per
    query and every other passage of the batch (gathered across processes under torchrun).

    The output loads in `simlm encode --model DIR` and as `SentenceTransformer(DIR)`, with the same vectors.
    """
    from simlm_cli.console import info
    from simlm_cli.pipeline.train import RetrieverSpec, train_retriever

    spec = RetrieverSpec(
        train_file=str(train_file) if train_file else "", pooling=None if pooling == "model" else pooling,
        normalize=normalize, query_max_length=query_max_length, passage_max_length=passage_max_length,
        passage_format=passage_format, negatives=negatives, temperature=temperature, loss=loss,
    )  # fmt: skip
    config = options.trainer_config(
        "train", train_file, corpus, output, model=model, corpus_format=corpus_format, max_steps=max_steps,
        epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr, weight_decay=weight_decay,
        warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, save_steps=save_steps,
        save_total_limit=save_total_limit, log_steps=log_steps, seed=seed, device=device, precision=precision,
        resume=resume, dry_run=dry_run,
    )  # fmt: skip
    train_retriever(spec, config, log=info)


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        short_help="Training file -> bi-encoder retriever.",
        epilog=options.example("simlm train -t train.jsonl -c corpus.jsonl --model DIR --output retriever"),
    )(train)
