"""Condenser (Gao & Callan, 2021): a shallow head reads the last-layer [CLS] and an early layer's token states."""

from __future__ import annotations

from typing import Any

import torch

from simlm_cli.api import Objective, Option, SimlmError, StepOutput, encoder_layers

HEAD_INITS = ("random", "copy")


class Condenser(Objective):
    name = "condenser"
    api_version = "1.0"
    summary = "MLM through a 2-layer head fed last-layer [CLS] + early-layer tokens (and optionally the encoder's MLM)"
    options = (
        Option("mask-rate", float, 0.30, "Share of words masked (BERT 80/10/10 corruption)."),
        Option("skip-layer", int, 0, "Encoder layer whose token states feed the head. 0: half the depth (6 of 12)."),
        Option("head-layers", int, 2, "Head depth."),
        Option(
            "head-init",
            str,
            "random",
            "How the head's layers start: random (fresh layers, BERT's initialisation, as Condenser) or copy "
            "(copies of the encoder's last layers).",
        ),
        Option("encoder-mlm", bool, True, "Also apply the MLM loss to the encoder's own last layer."),
    )

    @classmethod
    def validate(cls, values: dict[str, Any]) -> None:
        super().validate(values)
        if values.get("head_init") not in HEAD_INITS:
            raise SimlmError(f"--head-init {values.get('head_init')!r}: expected one of {', '.join(HEAD_INITS)}")

    def __init__(self, model_path: str, tokenizer: Any, opts: dict[str, Any], log=print):
        super().__init__(model_path, tokenizer, opts, log)
        depth = len(encoder_layers(self.encoder))
        self.skip_layer = int(opts["skip_layer"]) or max(1, depth // 2)
        if not 1 <= self.skip_layer <= depth:
            raise SimlmError(f"--skip-layer {self.skip_layer}: the encoder has {depth} layers")
        count = int(opts["head_layers"])
        if opts["head_init"] == "copy":
            self.condenser_head = self.copy_last_layers(count, "head-layers")
        else:
            self.condenser_head = self.fresh_layers(count, "head-layers")

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator) -> StepOutput:
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        (mask,) = self.masker.masks(input_ids, attention_mask, [self.opts["mask_rate"]], rng)
        corrupted = self.masker.bert_corrupt(input_ids, mask, rng)
        out = self.encode(corrupted, attention_mask, output_hidden_states=True)
        last = out.last_hidden_state
        early = out.hidden_states[self.skip_layer]
        hidden = torch.cat([last[:, :1], early[:, 1:]], dim=1)
        head_hidden = self.run_stack(self.condenser_head, hidden, attention_mask)
        head_loss = self.mlm_loss(head_hidden, input_ids, mask)
        parts = {"head": head_loss.detach()}
        loss = head_loss
        if self.opts["encoder_mlm"]:
            enc_loss = self.mlm_loss(last, input_ids, mask)
            parts["enc"] = enc_loss.detach()
            loss = loss + enc_loss
        return StepOutput(loss, parts)
