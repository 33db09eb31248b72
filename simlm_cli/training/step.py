"""What a training step returns to the trainer, whatever is trained (a pretraining objective, a bi-encoder, a
cross-encoder): any module whose `forward(batch, rng)` returns a `StepOutput` can be trained."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class StepOutput:
    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)  # detached loss components, e.g. enc, dec
    replace_ratio: torch.Tensor | None = None  # share of masked positions whose token actually changed
