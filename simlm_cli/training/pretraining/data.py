"""Pretraining text: the passages of a corpus in any `simlm` format, tokenized to a maximum length."""

from __future__ import annotations

from typing import Any

import numpy as np

from simlm_cli.errors import InputError
from simlm_cli.io.corpus import CorpusFormat, iter_corpus


def load_texts(path: str, fmt: CorpusFormat = CorpusFormat.auto, limit: int | None = None) -> list[str]:
    """Title + text of each passage, skipping empty ones; no usable text at all is a one-line error."""
    texts: list[str] = []
    for passage in iter_corpus(path, fmt, check_duplicates=False):
        text = passage.joined().strip()
        if text:
            texts.append(text)
            if limit is not None and len(texts) >= limit:
                break
    if not texts:
        raise InputError(path, "no usable text: every passage's title and text are empty")
    return texts


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, Any]:
    return tokenizer(
        texts, max_length=max_length, truncation=True, padding=True, return_tensors="pt", return_token_type_ids=False
    )


class TextData:
    """Pretraining: passages (title + text) tokenized to `max_length`."""

    def __init__(self, texts: list[str], tokenizer: Any, max_length: int):
        self.texts = texts
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.texts)

    def batch(self, rows: np.ndarray, epoch: int) -> dict[str, Any]:
        return dict(tokenize(self.tokenizer, [self.texts[i] for i in rows], self.max_length))
