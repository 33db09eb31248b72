"""SimLM's replaced language modelling (Wang et al., 2022): a [CLS] bottleneck between encoder and shallow decoder."""

from __future__ import annotations

from typing import Any

import torch

from simlm_cli.api import Generator, Objective, ReplacedInputs, StepOutput, mlm_targets, replacement_options


class RLM(ReplacedInputs, Objective):
    """Encoder and decoder inputs are corrupted by a generator's samples; both predict the original at every
    position but the special tokens ([CLS], [SEP], padding).

    Word-level masks are nested (encoder ⊂ decoder) and every masked position holds a token sampled from the
    generator (the sample may equal the original); the generator fills each input separately, from that input's
    own masked view. The decoder sees the encoder only through its last-layer [CLS] vector, which replaces
    position 0 of the decoder's embedded input.
    """

    name = "rlm"
    api_version = "1.0"
    summary = "SimLM replaced language modelling: generator-corrupted encoder/decoder, [CLS] bottleneck"
    options = replacement_options()

    def __init__(self, model_path: str, tokenizer: Any, opts: dict[str, Any], log=print):
        super().__init__(model_path, tokenizer, opts, log)
        self.decoder = self.copy_last_layers(int(opts["decoder_layers"]))
        self.generator = Generator(opts["generator"], tokenizer, self.mlm.config, bool(opts["train_generator"]), log)

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator) -> StepOutput:
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        enc_ids, dec_ids, _, dec_mask, gen_loss = self.corrupt(input_ids, attention_mask, rng)
        targets = mlm_targets(self.masker, input_ids, attention_mask)
        enc_hidden = self.encode(enc_ids, attention_mask).last_hidden_state
        enc_loss = self.mlm_loss(enc_hidden, input_ids, targets)
        dec_hidden = self.run_layers(self.decoder, enc_hidden[:, 0], dec_ids, attention_mask)
        dec_loss = self.mlm_loss(dec_hidden, input_ids, targets)
        loss = enc_loss + dec_loss
        parts = {"enc": enc_loss.detach(), "dec": dec_loss.detach()}
        if gen_loss is not None:
            loss = loss + self.opts["generator_loss_weight"] * gen_loss
            parts["gen"] = gen_loss.detach()
        changed = (dec_ids != input_ids) & dec_mask
        ratio = changed.sum().float() / dec_mask.sum().clamp(min=1).float()
        return StepOutput(loss, parts, ratio.detach())
