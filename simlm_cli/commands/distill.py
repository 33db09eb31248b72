"""`simlm distill`: a bi-encoder student taught by the re-ranker's scores (Retriever_distill)."""

from __future__ import annotations

from simlm_cli.commands import options
from simlm_cli.flags import command_from
from simlm_cli.options.training import DistillConfig


def distill(config: DistillConfig) -> None:
    """Train a bi-encoder on KL(teacher || student) over 1 positive + n negatives, plus alpha x contrastive.

    The teacher is the cross-encoder's score of each (query, passage) in the training file.
    """
    from simlm_cli.console import info
    from simlm_cli.pipeline.train import train_retriever

    train_retriever(*config.training(), log=info)


register = options.registrar(
    command_from(DistillConfig, distill),
    "Teacher-scored training file -> distilled bi-encoder.",
    options.example("simlm distill -t scored.jsonl -c corpus.jsonl --model DIR --output student"),
)
