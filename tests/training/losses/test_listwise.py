"""The re-ranker's listwise loss against a hand computation and torch.nn.functional, and its column choice."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from simlm_cli.training.losses import ListwiseLoss
from simlm_cli.training.losses.listwise import listwise_top


def test_listwise_matches_hand_computation():
    scores = [[2.0, 1.0, -1.0], [0.5, 3.0, 0.0]]
    expected = -sum(math.log(math.exp(row[0]) / sum(math.exp(x) for x in row)) for row in scores) / 2
    loss = ListwiseLoss()(torch.tensor(scores, dtype=torch.float64)).loss
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_listwise_is_the_mean_negative_log_softmax_of_column_0():
    scores = torch.randn(5, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = -F.log_softmax(scores, dim=1)[:, 0].mean()
    assert ListwiseLoss()(scores).loss.item() == pytest.approx(expected.item(), rel=1e-12)
    with pytest.raises(ValueError, match="scores"):
        ListwiseLoss()(torch.zeros(3))


def test_listwise_top_keeps_the_positive_then_the_hardest_negatives():
    scores = torch.tensor([[0.1, 5.0, -1.0, 3.0, 2.0], [-9.0, 1.0, 2.0, 3.0, 0.0]])
    # Row 2's positive scores lowest of all and is still kept, first, as the authors' +inf does.
    assert listwise_top(scores, 3).tolist() == [[0, 1, 3], [0, 3, 2]]
    assert listwise_top(scores, 5)[:, 0].tolist() == [0, 0]
    with pytest.raises(ValueError):
        listwise_top(scores, 6)
