"""`simlm train`: fine-tune a bi-encoder retriever on mined hard negatives (Retriever1 / Retriever2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simlm_cli.commands import options
from simlm_cli.io.corpus import CorpusFormat


@options.trainer_options
@options.retriever_options
def train(
    train_file: Path = options.TrainFile,
    corpus: Path = options.Corpus,
    output: Path = options.OutputDir,
    model: str = options.Model,
    corpus_format: CorpusFormat = options.CorpusFormatOpt,
    pooling: str = typer.Option(
        "cls",
        "--pooling",
        autocompletion=options.complete_trainer_pooling,
        help="cls (the paper's), mean, or model (the model's own).",
    ),
    negatives: int = typer.Option(15, "--negatives", "-n", help="Hard negatives per query (re-sampled each epoch)."),
    temperature: float = typer.Option(0.02, "--temperature", help="Scores are cosine / temperature."),
    loss: str = typer.Option(
        "paper",
        "--loss",
        autocompletion=options.complete_loss,
        help="paper: Eq. 3 (in-batch + hard negatives, positive-passage-vs-negatives terms); full: also the "
        "query-query terms, as the reference implementation.",
    ),
    batch_size: int = options.RetrieverBatchSize,
    *,
    retriever: dict[str, Any],
    trainer: dict[str, Any],
) -> None:
    """Train a bi-encoder (one shared encoder) with the contrastive loss over 1 positive + n hard negatives per
    query and every other passage of the batch (gathered across processes under torchrun).

    The output loads in `simlm encode --model DIR` and as `SentenceTransformer(DIR)`, with the same vectors.
    """
    from simlm_cli.console import info
    from simlm_cli.pipeline.train import RetrieverSpec, train_retriever

    spec = RetrieverSpec(
        train_file=str(train_file) if train_file else "",
        pooling=None if pooling == "model" else pooling,
        negatives=negatives,
        temperature=temperature,
        loss=loss,
        **retriever,
    )
    config = options.trainer_config(
        "train", train_file, corpus, output, trainer, model=model, corpus_format=corpus_format, batch_size=batch_size
    )
    train_retriever(spec, config, log=info)


register = options.registrar(
    train,
    "Training file -> bi-encoder retriever.",
    options.example("simlm train -t train.jsonl -c corpus.jsonl --model DIR --output retriever"),
)
