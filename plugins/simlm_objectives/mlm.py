"""BERT's masked language modelling with whole-word masking at a 30% rate; no decoder."""

from __future__ import annotations

from typing import Any

import torch

from simlm_cli.api import Objective, Option, StepOutput


class MLM(Objective):
    name = "mlm"
    api_version = "1.0"
    summary = "BERT masked language modelling (whole words, 80/10/10 corruption), loss on masked tokens"
    options = (Option("mask-rate", float, 0.30, "Share of words masked."),)

    def __init__(self, model_path: str, tokenizer: Any, opts: dict[str, Any], log=print):
        super().__init__(model_path, tokenizer, opts, log)

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator) -> StepOutput:
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        (mask,) = self.masker.masks(input_ids, attention_mask, [self.opts["mask_rate"]], rng)
        corrupted = self.masker.bert_corrupt(input_ids, mask, rng)
        hidden = self.encode(corrupted, attention_mask).last_hidden_state
        loss = self.mlm_loss(hidden, input_ids, mask)
        return StepOutput(loss, {"enc": loss.detach()})
