"""How a passage's or query's hidden states become its vector: the one pooling function of simlm.

Training (`BiEncoder.embed`) and serving (`Encoder`, behind `simlm encode`, `search` and `mine`) both call
`pool`, so a trained model encodes the same way it was trained; `tests/models/test_biencoder.py` checks that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, normalize: bool) -> torch.Tensor:
    """[CLS] ("cls") or the mean over real tokens ("mean") of `hidden` (batch, tokens, dim), L2-normalised when
    `normalize`. In float32 whatever the autocast precision: a bf16 mean or norm would cost accuracy for nothing."""
    hidden = hidden.float()
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=-1) if normalize else pooled
