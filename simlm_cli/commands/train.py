"""`simlm train`: fine-tune a bi-encoder retriever on mined hard negatives (Retriever1 / Retriever2)."""

from __future__ import annotations

from simlm_cli.commands import options
from simlm_cli.flags import command_from
from simlm_cli.options.training import TrainRetrieverConfig


def train(config: TrainRetrieverConfig) -> None:
    """Train a bi-encoder (one shared encoder) with the contrastive loss over 1 positive + n hard negatives per
    query and every other passage of the batch (gathered across processes under torchrun).

    The output loads in `simlm encode --model DIR` and as `SentenceTransformer(DIR)`, with the same vectors.
    """
    from simlm_cli.console import info
    from simlm_cli.pipeline.train import train_retriever

    train_retriever(*config.training(), log=info)


register = options.registrar(
    command_from(TrainRetrieverConfig, train),
    "Training file -> bi-encoder retriever.",
    options.example("simlm train -t train.jsonl -c corpus.jsonl --model DIR --output retriever"),
)
