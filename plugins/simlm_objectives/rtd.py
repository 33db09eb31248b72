"""Replaced token detection on the RLM architecture: encoder and decoder each tell replaced from original tokens."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simlm_cli.api import (
    Generator,
    Objective,
    ReplacedInputs,
    StepOutput,
    freeze_unshared,
    mlm_targets,
    replacement_options,
)


class RTD(ReplacedInputs, Objective):
    """Each input is corrupted as RLM's (two independent generator draws, one per input's own masked view) so that
    the ablation changes only the loss; each head then labels every non-special token replaced or original."""

    name = "rtd"
    api_version = "1.0"
    summary = "RLM architecture with binary replaced-or-original heads on the encoder and the decoder"
    options = replacement_options()

    def __init__(self, model_path: str, tokenizer: Any, opts: dict[str, Any], log=print):
        super().__init__(model_path, tokenizer, opts, log)
        freeze_unshared(self.head, self.encoder)  # the MLM head is unused here; kept only for the saved format
        hidden = self.mlm.config.hidden_size
        self.decoder = self.copy_last_layers(int(opts["decoder_layers"]))
        self.enc_rtd = nn.Linear(hidden, 1)
        self.dec_rtd = nn.Linear(hidden, 1)
        self.generator = Generator(opts["generator"], tokenizer, self.mlm.config, bool(opts["train_generator"]), log)

    def prediction_heads(self) -> list[nn.Module]:
        return [self.enc_rtd, self.dec_rtd]  # the MLM head is unused here

    @staticmethod
    def _rtd_loss(head: nn.Module, hidden: torch.Tensor, replaced: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        if not where.any():
            return hidden.sum() * 0.0 + sum(p.sum() for p in head.parameters()) * 0.0
        logits = head(hidden[where]).squeeze(-1).float()
        return F.binary_cross_entropy_with_logits(logits, replaced[where].float())

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator) -> StepOutput:
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        targets = mlm_targets(self.masker, input_ids, attention_mask)
        enc_ids, dec_ids, _, dec_mask, gen_loss = self.corrupt(input_ids, attention_mask, rng)
        enc_hidden = self.encode(enc_ids, attention_mask).last_hidden_state
        enc_loss = self._rtd_loss(self.enc_rtd, enc_hidden, enc_ids != input_ids, targets)
        dec_hidden = self.run_layers(self.decoder, enc_hidden[:, 0], dec_ids, attention_mask)
        dec_loss = self._rtd_loss(self.dec_rtd, dec_hidden, dec_ids != input_ids, targets)
        loss = enc_loss + dec_loss
        parts = {"enc": enc_loss.detach(), "dec": dec_loss.detach()}
        if gen_loss is not None:
            loss = loss + self.opts["generator_loss_weight"] * gen_loss
            parts["gen"] = gen_loss.detach()
        ratio = ((dec_ids != input_ids) & dec_mask).sum().float() / dec_mask.sum().clamp(min=1).float()
        return StepOutput(loss, parts, ratio.detach())
