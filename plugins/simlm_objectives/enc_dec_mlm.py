"""SimLM's enc-dec MLM ablation: the RLM architecture with [MASK] inputs and loss on masked tokens only."""

from __future__ import annotations

from typing import Any

import torch

from simlm_cli.api import Objective, Option, StepOutput


class EncDecMLM(Objective):
    name = "enc-dec-mlm"
    api_version = "1.0"
    summary = "encoder + shallow [CLS]-bottleneck decoder, both on [MASK]ed inputs, loss on masked tokens"
    options = (
        Option("encoder-mask-rate", float, 0.30, "Share of words masked in the encoder's input."),
        Option("decoder-mask-rate", float, 0.50, "Share of words masked in the decoder's input (superset)."),
        Option("decoder-layers", int, 2, "Decoder depth; its layers start as copies of the encoder's last ones."),
    )

    def __init__(self, model_path: str, tokenizer: Any, opts: dict[str, Any], log=print):
        super().__init__(model_path, tokenizer, opts, log)
        self.decoder = self.copy_last_layers(int(opts["decoder_layers"]))

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator) -> StepOutput:
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        enc_mask, dec_mask = self.masker.masks(
            input_ids, attention_mask, [self.opts["encoder_mask_rate"], self.opts["decoder_mask_rate"]], rng
        )
        mask_id = self.masker.mask_id
        enc_hidden = self.encode(input_ids.masked_fill(enc_mask, mask_id), attention_mask).last_hidden_state
        enc_loss = self.mlm_loss(enc_hidden, input_ids, enc_mask)
        dec_hidden = self.run_layers(
            self.decoder, enc_hidden[:, 0], input_ids.masked_fill(dec_mask, mask_id), attention_mask
        )
        dec_loss = self.mlm_loss(dec_hidden, input_ids, dec_mask)
        return StepOutput(enc_loss + dec_loss, {"enc": enc_loss.detach(), "dec": dec_loss.detach()})
