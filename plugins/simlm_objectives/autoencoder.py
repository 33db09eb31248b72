"""Auto-encoding through the [CLS] bottleneck: the encoder reads clean text, the decoder rebuilds it from [MASK]s."""

from __future__ import annotations

from typing import Any

import torch

from simlm_cli.api import Objective, Option, StepOutput


class AutoEncoder(Objective):
    name = "autoencoder"
    api_version = "1.0"
    summary = "clean encoder input; decoder sees only [MASK]s plus the [CLS] vector and reconstructs the text"
    options = (
        Option("decoder-layers", int, 2, "Decoder depth; its layers start as copies of the encoder's last ones."),
    )

    def __init__(self, model_path: str, tokenizer: Any, opts: dict[str, Any], log=print):
        super().__init__(model_path, tokenizer, opts, log)
        self.decoder = self.copy_last_layers(int(opts["decoder_layers"]))

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator) -> StepOutput:
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        maskable = self.masker.maskable(input_ids, attention_mask)
        enc_hidden = self.encode(input_ids, attention_mask).last_hidden_state
        dec_input = input_ids.masked_fill(maskable, self.masker.mask_id)
        dec_hidden = self.run_layers(self.decoder, enc_hidden[:, 0], dec_input, attention_mask)
        loss = self.mlm_loss(dec_hidden, input_ids, maskable)
        return StepOutput(loss, {"dec": loss.detach()})
