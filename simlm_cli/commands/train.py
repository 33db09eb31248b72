"""`simlm train`: fine-tune a bi-encoder retriever on mined hard negatives (Retriever1 / Retriever2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simlm_cli.commands import options


@options.trainer_options
@options.retriever_options(
    negatives=(15, "Hard negatives per query (re-sampled each epoch)."),
    temperature_help="Scores are cosine / temperature.",
    loss_help="paper: Eq. 3 (in-batch + hard negatives, positive-passage-vs-negatives terms); full: also the "
    "query-query terms, as the reference implementation.",
)
def train(
    train_file: str = options.TrainFile,
    corpus: str = options.Corpus,
    output: Path = options.OutputDir,
    model: str = options.Model,
    *,
    retriever: dict[str, Any],
    trainer: dict[str, Any],
) -> None:
    """Train a bi-encoder (one shared encoder) with the contrastive loss over 1 positive + n hard negatives per
    query and every other passage of the batch (gathered across processes under torchrun).

    The output loads in `simlm encode --model DIR` and as `SentenceTransformer(DIR)`, with the same vectors.
    """
    from simlm_cli.console import info
    from simlm_cli.pipeline.train import train_retriever

    spec, config = options.retriever_training(
        "train", (train_file, corpus, output), model, retriever=retriever, trainer=trainer
    )
    train_retriever(spec, config, log=info)


register = options.registrar(
    train,
    "Training file -> bi-encoder retriever.",
    options.example("simlm train -t train.jsonl -c corpus.jsonl --model DIR --output retriever"),
)
