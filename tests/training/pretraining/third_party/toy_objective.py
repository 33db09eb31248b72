"""A third-party pretraining objective, written as an outside package would write one: from `simlm_cli.api` only.

`test_plugin_api.py` installs it through the `simlm.objectives` entry point (a dist-info directory on sys.path);
`Future` and `Unversioned` are the same objective declaring a newer major API version, and none at all.
"""

from __future__ import annotations

from typing import Any

import torch

from simlm_cli.api import Objective, Option, SimlmError, StepOutput


class ToyObjective(Objective):
    """Masked language modelling with a loss weight: the smallest objective that exercises options, validation,
    the base class's masker, encoder and MLM head."""

    name = "toy"
    summary = "a third-party objective: weighted MLM on masked words"
    api_version = "1.0"
    options = (
        Option("mask-rate", float, 0.25, "Share of words masked."),
        Option("loss-weight", float, 1.0, "Factor on the MLM loss."),
    )

    @classmethod
    def validate(cls, values: dict[str, Any]) -> None:
        super().validate(values)
        if values["loss_weight"] <= 0:
            raise SimlmError(f"--loss-weight {values['loss_weight']}: must be positive")

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator) -> StepOutput:
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        (mask,) = self.masker.masks(input_ids, attention_mask, [self.opts["mask_rate"]], rng)
        corrupted = input_ids.masked_fill(mask, self.tokenizer.mask_token_id)
        hidden = self.encode(corrupted, attention_mask).last_hidden_state
        loss = self.opts["loss_weight"] * self.mlm_loss(hidden, input_ids, mask)
        return StepOutput(loss, {"mlm": loss.detach()})


class Future(ToyObjective):
    name = "toy-future"
    api_version = "2.0"


class Unversioned(ToyObjective):
    name = "toy-unversioned"
    api_version = ""
