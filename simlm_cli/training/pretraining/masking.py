"""Whole-word masking: a WordPiece `##` piece (or a SentencePiece piece without `▁`) joins the word before it."""

from __future__ import annotations

from typing import Any

import torch


class WordMasker:
    """Draws nested whole-word masks: one uniform draw per word, masked where it falls below the rate.

    Because every rate thresholds the same draw, the mask at a lower rate is a subset of the mask at a higher
    one (SimLM's encoder positions are a subset of the decoder's). Special tokens and padding are never masked.
    """

    def __init__(self, tokenizer: Any):
        vocab_size = len(tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
        pieces = [p or "" for p in pieces]
        sentencepiece = sum(p.startswith("\u2581") for p in pieces) > vocab_size // 10
        if sentencepiece:
            continuation = [not p.startswith("\u2581") and p.isalnum() for p in pieces]
        else:
            continuation = [p.startswith("##") for p in pieces]
        special = [False] * vocab_size
        for token_id in tokenizer.all_special_ids:
            if 0 <= token_id < vocab_size:
                special[token_id] = True
                continuation[token_id] = False
        self.continuation = torch.tensor(continuation, dtype=torch.bool)
        self.special = torch.tensor(special, dtype=torch.bool)
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no [MASK] token")
        self.mask_id = int(tokenizer.mask_token_id)
        self.vocab_size = vocab_size
        # Ordinary tokens, for BERT's 10% random replacements.
        self.normal_ids = torch.tensor([i for i in range(vocab_size) if not special[i]], dtype=torch.long)

    def maskable(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        special = self.special.to(input_ids.device)[input_ids]
        return attention_mask.bool() & ~special

    def word_draws(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """A uniform draw per token, equal for all tokens of a word; 2.0 (never masked) on specials and padding."""
        device = input_ids.device
        continuation = self.continuation.to(device)[input_ids]
        word_index = torch.cumsum((~continuation).long(), dim=1) - 1
        word_index = word_index.clamp(min=0)
        draws = torch.rand(input_ids.shape, generator=rng, device=device)
        per_token = torch.gather(draws, 1, word_index)
        return per_token.masked_fill(~self.maskable(input_ids, attention_mask), 2.0)

    def masks(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rates: list[float], rng: torch.Generator
    ) -> list[torch.Tensor]:
        draws = self.word_draws(input_ids, attention_mask, rng)
        return [draws < rate for rate in rates]

    def bert_corrupt(self, input_ids: torch.Tensor, mask: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """BERT's corruption of the masked positions: 80% [MASK], 10% a random token, 10% unchanged."""
        choice = torch.rand(input_ids.shape, generator=rng, device=input_ids.device)
        normal = self.normal_ids.to(input_ids.device)
        random_tokens = normal[torch.randint(len(normal), input_ids.shape, generator=rng, device=input_ids.device)]
        out = input_ids.clone()
        out = torch.where(mask & (choice < 0.8), torch.full_like(out, self.mask_id), out)
        return torch.where(mask & (choice >= 0.8) & (choice < 0.9), random_tokens, out)
