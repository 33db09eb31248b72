"""Whole-word masking: rates, nesting, word integrity, specials."""

from __future__ import annotations

import random

import torch

from simlm_cli.training.pretraining.masking import WordMasker

from .conftest import batch_of, toy_sentence


def _batch(tokenizer, n=64, seed=1):
    rng = random.Random(seed)
    return batch_of(tokenizer, [toy_sentence(rng) for _ in range(n)])


def test_rates_within_tolerance_over_many_draws(tokenizer):
    masker = WordMasker(tokenizer)
    batch = _batch(tokenizer)
    maskable = masker.maskable(batch["input_ids"], batch["attention_mask"])
    rng = torch.Generator().manual_seed(0)
    enc_total = dec_total = 0
    draws = 200
    for _ in range(draws):
        enc, dec = masker.masks(batch["input_ids"], batch["attention_mask"], [0.3, 0.5], rng)
        enc_total += int(enc.sum())
        dec_total += int(dec.sum())
    n = int(maskable.sum()) * draws
    assert abs(enc_total / n - 0.30) < 0.01
    assert abs(dec_total / n - 0.50) < 0.01


def test_encoder_mask_is_subset_of_decoder_mask(tokenizer):
    masker = WordMasker(tokenizer)
    batch = _batch(tokenizer)
    rng = torch.Generator().manual_seed(1)
    for _ in range(20):
        enc, dec = masker.masks(batch["input_ids"], batch["attention_mask"], [0.3, 0.5], rng)
        assert not (enc & ~dec).any()
        assert (dec & ~enc).any()


def test_special_tokens_and_padding_never_masked(tokenizer):
    masker = WordMasker(tokenizer)
    batch = _batch(tokenizer)
    ids = batch["input_ids"]
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids)) | ~batch["attention_mask"].bool()
    assert special.any()
    rng = torch.Generator().manual_seed(2)
    for _ in range(50):
        (mask,) = masker.masks(ids, batch["attention_mask"], [0.95], rng)
        assert not (mask & special).any()


def test_whole_words_are_masked_together(tokenizer):
    masker = WordMasker(tokenizer)
    batch = _batch(tokenizer)
    ids = batch["input_ids"]
    continuation = masker.continuation[ids]
    assert continuation.any(), "the toy corpus must contain ## pieces"
    rng = torch.Generator().manual_seed(3)
    for _ in range(20):
        (mask,) = masker.masks(ids, batch["attention_mask"], [0.4], rng)
        # a ## piece shares its mask with the token before it
        assert torch.equal(mask[:, 1:][continuation[:, 1:]], mask[:, :-1][continuation[:, 1:]])


def test_bert_corruption_only_touches_masked_positions(tokenizer):
    masker = WordMasker(tokenizer)
    batch = _batch(tokenizer)
    rng = torch.Generator().manual_seed(4)
    (mask,) = masker.masks(batch["input_ids"], batch["attention_mask"], [0.5], rng)
    out = masker.bert_corrupt(batch["input_ids"], mask, rng)
    assert torch.equal(out[~mask], batch["input_ids"][~mask])
    share = float((out[mask] == masker.mask_id).float().mean())
    assert 0.7 < share < 0.9
