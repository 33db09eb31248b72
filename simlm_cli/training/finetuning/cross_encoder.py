"""Fine-tuning the SimLM re-ranker (`simlm rerank train`): the query groups it learns from and the listwise loss.

The model is `simlm_cli.models.cross_encoder.CrossEncoder`, the one `simlm rerank` scores with, built with
`CrossEncoder.for_training(..., loss=RerankLoss(...))`.

Each training query contributes a group of n passages: one positive (drawn from its positives) and n-1 hard
negatives (drawn from its negatives, those a retriever ranked high). The model scores each (query, passage) pair
with one logit, and the loss is the cross-entropy of the group's n scores with the positive at index 0. Groups
are re-drawn every epoch by `default_rng([seed, epoch, row])`, so a resumed run sees the same groups.

With `backprop_top` M < n (the paper's 16 of 64), the group is first scored without gradients and with dropout
off; only the positive and the M-1 negatives the model scores highest are then run again, with gradients, and the
loss is the cross-entropy over those M. This is the authors' `rerank_forward_factor` (microsoft/unilm
simlm/src/models/cross_encoder_model.py, `Reranker.forward`): the backward pass costs M, not n, pairs per query
while the negatives it learns from are the hardest of n.

Queries with no negative left (after dropping any that are also positives) are skipped and counted: a group of
one passage has a zero loss and teaches nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import Passage
from simlm_cli.io.train_file import TrainExample
from simlm_cli.models.cross_encoder import CrossEncoder, pad_pairs, pair_logits, tokenize_pairs
from simlm_cli.training.finetuning.groups import draw_group
from simlm_cli.training.losses import ListwiseLoss
from simlm_cli.training.losses.listwise import listwise_top
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


# -- the loss -----------------------------------------------------------------------------------------------------
class RerankLoss(nn.Module):
    """The re-ranker's training loss, `loss(model, batch)`: the listwise loss of each query's group of
    `group_size` pairs, or of its top `backprop_top` when that is set and smaller than the group (see the module
    docstring). It takes the model because choosing the top rows is a pass of the model without gradients."""

    def __init__(self, group_size: int, backprop_top: int | None = None):
        super().__init__()
        if backprop_top is not None and not 2 <= backprop_top <= group_size:
            raise SimlmError(f"--backprop-top must be between 2 and --group-size ({group_size}), got {backprop_top}")
        self.backprop_top = backprop_top if backprop_top is not None and backprop_top < group_size else None
        self.listwise = ListwiseLoss()

    def forward(self, model: CrossEncoder, batch: dict[str, torch.Tensor]) -> StepOutput:
        if self.backprop_top is None:
            return self.listwise(model.scores(batch))
        rows = self.top_rows(model, batch)
        chosen = {key: value[rows] for key, value in batch.items()}
        scores = pair_logits(model.model, _without_padding_columns(chosen)).view(-1, self.backprop_top)
        return self.listwise(scores)

    def top_rows(self, model: CrossEncoder, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch rows to back-propagate through: per query, its positive and the `backprop_top`-1 negatives
        the model scores highest, found by a pass without gradients in eval mode (no dropout), as the authors do."""
        training = model.model.training
        model.model.eval()
        try:
            with torch.no_grad():
                scores = model.scores(batch)
        finally:
            model.model.train(training)
        keep = listwise_top(scores, self.backprop_top)
        first_row = torch.arange(keep.shape[0], device=keep.device).unsqueeze(1) * model.group_size
        return (keep + first_row).view(-1)


def _without_padding_columns(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch cut after its last non-padding column: the rows kept may all be shorter than the longest pair of
    the group. Only trailing columns go, so a left-padded batch keeps its positions."""
    mask = batch.get("attention_mask")
    if mask is None or mask.ndim != 2:
        return batch
    used = mask.any(dim=0).nonzero()
    length = int(used.max()) + 1 if len(used) else mask.shape[1]
    return {key: value[:, :length] if value.ndim == 2 else value for key, value in batch.items()}
