"""Fine-tuning the SimLM re-ranker (`simlm rerank train`): the query groups it learns from and the listwise loss.

The model is `simlm_cli.models.cross_encoder.CrossEncoder`, the one `simlm rerank` scores with.

Each training query contributes a group of n passages: one positive (drawn from its positives) and n-1 hard
negatives (drawn from its negatives, those a retriever ranked high). The model scores each (query, passage) pair
with one logit, and the loss is the cross-entropy of the group's n scores with the positive at index 0. Groups
are re-drawn every epoch by `default_rng([seed, epoch, row])`, so a resumed run sees the same groups.

Queries with no negative left (after dropping any that are also positives) are skipped and counted: a group of
one passage has a zero loss and teaches nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import Passage
from simlm_cli.io.train_file import TrainExample
from simlm_cli.models.cross_encoder import CrossEncoder, pad_pairs, tokenize_pairs
from simlm_cli.training.finetuning.groups import draw_group
from simlm_cli.training.finetuning.losses import listwise_loss
from simlm_cli.training.step import StepOutput


# -- data ---------------------------------------------------------------------------------------------------------
def usable_examples(
    examples: Sequence[TrainExample], path: str | Path, log: Callable[[str], None] = print
) -> list[TrainExample]:
    """The examples with at least one negative that is not also a positive; the rest are skipped and counted."""
    kept = [e for e in examples if _negative_pool(e)]
    if len(kept) < len(examples):
        log(f"{path}: skipped {len(examples) - len(kept)} queries with no negative (a listwise group needs one)")
    if not kept:
        raise InputError(path, "no query has both a positive and a negative to train a re-ranker on")
    return kept


def _negative_pool(example: TrainExample) -> list[str]:
    positives = {c.docid for c in example.positives}
    return [c.docid for c in example.negatives if c.docid not in positives]


class RerankData:
    """Micro-batches of query groups, tokenized as (query, title + " " + text) pairs: group_size rows per query,
    the positive first. `batch(rows, epoch)` is a pure function of its arguments and the seed."""

    unit = "queries"

    def __init__(
        self,
        examples: Sequence[TrainExample],
        passages: dict[str, Passage],
        tokenizer: Any,
        group_size: int,
        max_length: int,
        seed: int,
    ):
        if group_size < 2:
            raise SimlmError("--group-size must be at least 2 (one positive and one negative)")
        self.examples = list(examples)
        self.pools = [_negative_pool(e) for e in self.examples]
        if not all(self.pools):
            raise SimlmError("every training query needs a negative (filter with usable_examples first)")
        self.passages = passages
        self.tokenizer = tokenizer
        self.group_size = group_size
        self.max_length = max_length
        self.seed = seed

    def __len__(self) -> int:
        return len(self.examples)

    def group(self, row: int, epoch: int) -> tuple[str, list[str]]:
        """(query, [positive, negative, ...]) of one example in one epoch."""
        example, pool = self.examples[row], self.pools[row]
        rng = np.random.default_rng([self.seed, epoch, int(row)])
        positive, negatives = draw_group(rng, example.positives, pool, self.group_size - 1)
        return example.query, [positive.docid, *negatives]

    def batch(self, rows: np.ndarray, epoch: int) -> dict[str, Any]:
        queries: list[str] = []
        texts: list[str] = []
        for row in rows:
            query, docids = self.group(int(row), epoch)
            queries += [query] * len(docids)
            texts += [self.passages[d].joined() for d in docids]
        return pad_pairs(self.tokenizer, tokenize_pairs(self.tokenizer, queries, texts, self.max_length))


# -- the objective -------------------------------------------------------------------------------------------------
class CrossEncoderObjective(CrossEncoder):
    """The re-ranker being trained: `forward(batch, rng)` scores every pair and returns the listwise loss."""

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator | None = None) -> StepOutput:
        return StepOutput(listwise_loss(self.scores(batch)))
