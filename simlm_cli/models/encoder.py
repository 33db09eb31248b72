"""A bi-encoder tower for inference: tokenize, length-sort, batch, pool, normalise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simlm_cli.device import Runtime
from simlm_cli.errors import SimlmError
from simlm_cli.io.corpus import Passage
from simlm_cli.models.settings import EncoderSettings, resolve_model_path


def _quiet_transformers() -> None:
    """Keep transformers' own progress bars and notices off stderr; simlm reports what it loads."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    _quiet_transformers()
    path = resolve_model_path(model)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise SimlmError(f"cannot load a tokenizer for {model!r}: {_first_line(err)}") from None


def load_hf_model(model: str, auto_class: Any = None) -> Any:
    """Load weights with an AutoModel class, from safetensors only, as the training loaders do: a `.bin` is a pickle,
    and a model directory may come from anywhere (only torch's `weights_only` default would stop a planted one)."""
    from transformers import AutoModel

    _quiet_transformers()
    path = resolve_model_path(model)
    try:
        return (auto_class or AutoModel).from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as err:
        hint = ""
        if Path(path).is_dir() and not any(Path(path).glob("*.safetensors")):
            hint = " (simlm loads safetensors weights only; save the model with `save_pretrained(dir)` to get them)"
        raise SimlmError(f"cannot load model {model!r}: {_first_line(err)}{hint}") from None


def tokenize_texts(tokenizer: Any, texts: list[str], pairs: list[str] | None, max_length: int) -> dict[str, list]:
    """Unpadded token ids (and token types) of texts, or of (text, pair) pairs, truncated to `max_length`."""
    kwargs = {"truncation": True, "max_length": max_length, "padding": False, "return_attention_mask": False}
    if pairs is None:
        return dict(tokenizer(texts, **kwargs))
    return dict(tokenizer(texts, pairs, **kwargs))


def tokenize_passages(
    tokenizer: Any, passages: Sequence[Passage], passage_format: str, max_length: int
) -> dict[str, list]:
    """Passages as `passage_format` says: "concat" (title + " " + text) or "pair" (title, text); passages without
    a title are tokenized as the text alone in either case. Training and encoding both use this."""
    if passage_format == "concat":
        return tokenize_texts(tokenizer, [p.joined() for p in passages], None, max_length)
    titled = [i for i, p in enumerate(passages) if p.title]
    untitled = [i for i, p in enumerate(passages) if not p.title]
    parts: dict[str, list] = {}
    for indices, pairs in ((titled, True), (untitled, False)):
        if not indices:
            continue
        texts = [passages[i].title if pairs else passages[i].text for i in indices]
        encoded = tokenize_texts(tokenizer, texts, [passages[i].text for i in indices] if pairs else None, max_length)
        for key, values in encoded.items():
            column = parts.setdefault(key, [None] * len(passages))
            for i, value in zip(indices, values):
                column[i] = value
    return parts


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class Encoder:
    """Encodes passages and queries the way `settings` says, on the given runtime."""

    def __init__(self, settings: EncoderSettings, runtime: Runtime, batch_size: int | None = None):
        import torch

        self.settings = settings
        self.runtime = runtime
        # Small batches are fastest on CPUs (cache-resident activations: 16 beat 128 by 1.4x on a 2-core EPYC);
        # GPUs want large ones.
        self.batch_size = batch_size or (16 if runtime.device_type == "cpu" else 256)
        self.tokenizer = load_tokenizer(settings.model)
        self.model = load_hf_model(settings.model).to(runtime.device).eval()
        self.dim = int(self.model.config.hidden_size)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._torch = torch

    # -- tokenization ---------------------------------------------------------------------------------------
    def tokenize_passages(self, passages: Sequence[Passage]) -> dict[str, list]:
        return tokenize_passages(
            self.tokenizer, passages, self.settings.passage_format, self.settings.passage_max_length
        )

    def tokenize_queries(self, queries: Sequence[str]) -> dict[str, list]:
        return tokenize_texts(self.tokenizer, list(queries), None, self.settings.query_max_length)

    # -- encoding -------------------------------------------------------------------------------------------
    def _pad(self, tokens: dict[str, list], rows: np.ndarray) -> dict[str, Any]:
        torch = self._torch
        ids = [tokens["input_ids"][i] for i in rows]
        width = max(len(x) for x in ids)
        batch = {"input_ids": np.full((len(rows), width), self.pad_id, dtype=np.int64)}
        mask = np.zeros((len(rows), width), dtype=np.int64)
        extra = [k for k in tokens if k != "input_ids"]
        for key in extra:
            batch[key] = np.zeros((len(rows), width), dtype=np.int64)
        for r, row in enumerate(rows):
            n = len(ids[r])
            batch["input_ids"][r, :n] = ids[r]
            mask[r, :n] = 1
            for key in extra:
                batch[key][r, :n] = tokens[key][row]
        batch["attention_mask"] = mask
        return {k: torch.from_numpy(v).to(self.runtime.device) for k, v in batch.items()}

    def _pool(self, hidden: Any, mask: Any) -> Any:
        hidden = hidden.float()
        if self.settings.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        if self.settings.normalize:
            pooled = self._torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    def encode_tokens(self, tokens: dict[str, list], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode tokenized inputs in length-sorted batches; rows come back in input order."""
        torch = self._torch
        lengths = np.fromiter((len(x) for x in tokens["input_ids"]), dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(lengths), self.dim), dtype=np.float32)
        with torch.inference_mode(), self.runtime.autocast():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self._pad(tokens, rows)
                hidden = self.model(**batch).last_hidden_state
                out[rows] = self._pool(hidden, batch["attention_mask"]).cpu().numpy()
                if on_batch is not None:
                    on_batch(len(rows))
        return out

    def encode_passages(self, passages: Sequence[Passage], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        return self.encode_tokens(self.tokenize_passages(passages), on_batch)

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encode_tokens(self.tokenize_queries(queries))
