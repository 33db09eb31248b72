"""The re-ranker's listwise loss (`simlm rerank train`), and the choice of the columns it back-propagates through."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simlm_cli.training.step import StepOutput


class ListwiseLoss(nn.Module):
    """Cross-entropy over each row of scores [B, n] (1 positive in column 0 + n-1 negatives), batch mean."""

    def forward(self, scores: Tensor) -> StepOutput:
        if scores.ndim != 2 or scores.shape[1] == 0:
            raise ValueError(f"expected scores [B, n], got {tuple(scores.shape)}")
        targets = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        return StepOutput(F.cross_entropy(scores, targets))


def listwise_top(scores: Tensor, keep: int) -> Tensor:
    """[B, keep] column indices into scores [B, n]: column 0 (the positive) first, then the `keep`-1 columns of
    the highest scores among the others (the hardest negatives), highest first.

    The selection of the SimLM authors' re-ranker (microsoft/unilm simlm/src/models/cross_encoder_model.py,
    `rerank_forward_factor`): they set the positive's score to +inf and take the top `keep` of the row, which keeps
    the positive whatever the model thinks of it and gives the same columns in the same order.
    """
    if scores.ndim != 2 or not 1 <= keep <= scores.shape[1]:
        raise ValueError(f"expected scores [B, n] with 1 <= keep <= n, got {tuple(scores.shape)} and keep {keep}")
    negatives = scores[:, 1:].topk(keep - 1, dim=1).indices + 1
    positive = torch.zeros(scores.shape[0], 1, dtype=negatives.dtype, device=scores.device)
    return torch.cat([positive, negatives], dim=1)
