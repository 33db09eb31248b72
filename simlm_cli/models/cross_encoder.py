"""The SimLM re-ranker (Figure 2): a cross-encoder scoring a (query, passage) pair with one logit.

This file is the cross-encoder for training and inference alike, one class, `CrossEncoder`: how pairs are
tokenized (`tokenize_pairs`, `pad_pairs`), how weights are loaded (`load_sequence_classifier`, or a backend's model
for inference), how a pair becomes a score (`pair_logits`), how a trained re-ranker is saved (`save_pretrained`,
`simlm_reranker.json`) and read back (`reranker_max_length`), and how `simlm rerank` scores pairs in length-sorted
batches (`score`). Training gives it a loss module (`simlm_cli.training.finetuning.cross_encoder.RerankLoss`), which
`forward` applies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from simlm_cli.backends import load_model
from simlm_cli.defaults import PAIRS_PER_BATCH
from simlm_cli.device import Precision, Runtime
from simlm_cli.errors import InputError, SimlmError, first_line
from simlm_cli.io.json_input import read_json
from simlm_cli.model_card import RERANKER_CARD
from simlm_cli.models.batching import length_sorted_batches, run_batches
from simlm_cli.models.loading import load_pretrained, load_tokenizer
from simlm_cli.models.settings import resolve_model_path

RERANKER_CONFIG = "simlm_reranker.json"
DEFAULT_MAX_LENGTH = 192  # the paper's re-ranker input length
# Saved in config.json: sentence-transformers' CrossEncoder then returns raw logits, as simlm does, not sigmoids.
ST_IDENTITY = {"activation_fn": "torch.nn.modules.linear.Identity"}


# -- tokenization -------------------------------------------------------------------------------------------------
def tokenize_pairs(tokenizer: Any, queries: Sequence[str], passages: Sequence[str], max_length: int) -> dict[str, list]:
    """Unpadded ids of the pairs (query, passage), cutting only the passage side to fit `max_length`.

    A query that alone fills `max_length` cannot be kept whole; such pairs fall back to cutting both sides.
    """
    kwargs = {"max_length": max_length, "padding": False, "return_attention_mask": False}
    try:
        return dict(tokenizer(list(queries), list(passages), truncation="only_second", **kwargs))
    except Exception:  # `tokenizers` raises a bare Exception ("Truncation error") for an over-long query
        rows = []
        for query, passage in zip(queries, passages):
            try:
                rows.append(tokenizer(query, passage, truncation="only_second", **kwargs))
            except Exception:
                rows.append(tokenizer(query, passage, truncation="longest_first", **kwargs))
        return {key: [row[key] for row in rows] for key in rows[0]}


def pad_pairs(tokenizer: Any, tokens: dict[str, list], rows: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """Pad the chosen rows of `tokenize_pairs` output into tensors (with an attention mask)."""
    if rows is not None:
        tokens = {key: [values[i] for i in rows] for key, values in tokens.items()}
    return dict(tokenizer.pad(tokens, return_tensors="pt"))


# -- the model ------------------------------------------------------------------------------------------------------
def load_sequence_classifier(
    model_path: str, log: Callable[[str], None], require_head: bool = False, **kwargs: Any
) -> nn.Module:
    """AutoModelForSequenceClassification with one output, from safetensors weights.

    A checkpoint without a one-logit head (a plain encoder, or a head of another size) gets a new one; training
    logs that, inference (`require_head`) refuses, since an untrained head gives random scores. Extra keyword
    arguments go to `from_pretrained`.
    """
    from transformers import AutoModelForSequenceClassification

    model, info = load_pretrained(
        model_path, AutoModelForSequenceClassification, " as a cross-encoder",
        num_labels=1, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs,
    )  # fmt: skip
    fresh = [str(k) for k in info.get("missing_keys", [])] + [str(k[0]) for k in info.get("mismatched_keys", [])]
    if fresh:
        if require_head:
            raise SimlmError(f"{model_path}: not a trained re-ranker (no weights for {', '.join(sorted(fresh)[:3])})")
        log(f"{model_path}: no one-score classification head in the checkpoint; initialised {', '.join(sorted(fresh))}")
    return model


def pair_logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """One raw logit per (query, passage) row of a padded batch, as float32: what training and re-ranking use."""
    return model(**batch).logits[:, 0].float()


class CrossEncoder(nn.Module):
    """The re-ranker, for training and inference. `CrossEncoder.for_training` loads the PyTorch weights to train
    with a loss (`forward`: `loss(self, batch)`) and save (`save_pretrained`); `CrossEncoder.load` loads a trained
    re-ranker on a runtime's backend (PyTorch, OpenVINO) to `score` pairs in length-sorted batches."""

    card_kind = RERANKER_CARD

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_length: int = DEFAULT_MAX_LENGTH,
        runtime: Runtime | None = None,
        group_size: int | None = None,
        batch_size: int = PAIRS_PER_BATCH,
        loss: nn.Module | None = None,
        base_model_path: str | None = None,
    ):
        super().__init__()
        self.model = model  # a Hugging Face sequence classifier, or a backend's model called alike
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.runtime = runtime or Runtime("cpu", Precision.fp32)
        self.group_size = group_size  # training: pairs per query group
        self.batch_size = batch_size  # inference: pairs per forward pass
        self.loss = loss
        self.base_model_path = base_model_path

    @classmethod
    def for_training(
        cls,
        model_path: str,
        tokenizer: Any,
        group_size: int,
        max_length: int = DEFAULT_MAX_LENGTH,
        log: Callable[[str], None] = print,
        loss: nn.Module | None = None,
    ) -> CrossEncoder:
        """The PyTorch weights of `model_path` (a one-logit head added if absent), to train with `loss`."""
        model = load_sequence_classifier(model_path, log)
        model.config.sentence_transformers = dict(ST_IDENTITY)
        return cls(model, tokenizer, max_length, group_size=group_size, loss=loss, base_model_path=model_path)

    @classmethod
    def load(
        cls,
        model: str,
        runtime: Runtime,
        batch_size: int = PAIRS_PER_BATCH,
        max_length: int | None = None,
        log: Callable[[str], None] = print,
    ) -> CrossEncoder:
        """A trained re-ranker ready for inference on `runtime`'s backend; its pair length the one it was trained
        with unless `max_length` is given."""
        if batch_size < 1:
            raise SimlmError("--batch-size must be at least 1")
        path = resolve_model_path(model)

        def load_torch(model_dir: str, **kwargs: Any) -> nn.Module:
            return load_sequence_classifier(model_dir, log, require_head=True, **kwargs)

        loaded = load_model(path, "classifier", runtime, load_torch, log)
        length = max_length or reranker_max_length(path)
        return cls(loaded, load_tokenizer(path), length, runtime, batch_size=batch_size)

    # -- training -------------------------------------------------------------------------------------------
    def scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One logit per (query, passage) row of the batch, as float32 of shape (queries, group)."""
        return pair_logits(self.model, batch).view(-1, self.group_size)

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator | None = None) -> Any:
        """The training loss of a batch of query groups (a `StepOutput`)."""
        if self.loss is None:
            raise TypeError("this CrossEncoder was built without a loss (CrossEncoder.for_training(..., loss=...))")
        return self.loss(self, batch)

    def save_pretrained(self, directory: Path) -> None:
        """HF model + tokenizer (AutoModelForSequenceClassification and sentence-transformers' CrossEncoder load
        it alike) and `simlm_reranker.json` with the input length."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        _set_tokenizer_max_length(directory, self.max_length)
        meta = {"max_length": self.max_length, "group_size": self.group_size, "base_model": self.base_model_path}
        (directory / RERANKER_CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    # -- inference ------------------------------------------------------------------------------------------
    def score(
        self, queries: Sequence[str], texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """One raw logit per (queries[i], texts[i]), in input order (`run_batches`)."""
        if not len(queries):
            return np.empty(0, dtype=np.float32)
        tokens = tokenize_pairs(self.tokenizer, queries, texts, self.max_length)
        lengths = np.fromiter((len(x) for x in tokens["input_ids"]), dtype=np.int64)
        # similar lengths together: little padding; each batch padded when its turn comes
        batches = (
            (rows, pad_pairs(self.tokenizer, tokens, rows)) for rows in length_sorted_batches(lengths, self.batch_size)
        )

        def forward(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            return pair_logits(self.model, inputs)

        return run_batches(batches, len(queries), (), self.runtime, forward, on_batch)


def _set_tokenizer_max_length(directory: Path, max_length: int) -> None:
    """CrossEncoder(dir) cuts inputs at the tokenizer's model_max_length: make that the trained length."""
    path = directory / "tokenizer_config.json"
    if path.is_file():
        config = read_json(path)
        config["model_max_length"] = max_length
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def reranker_max_length(model_dir: str | Path, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The input length a re-ranker was trained with (`simlm_reranker.json`), else `default`."""
    return resolve_reranker_max_length(model_dir, None, default)[0]


def resolve_reranker_max_length(
    model_dir: str | Path, flag: int | None, default: int = DEFAULT_MAX_LENGTH
) -> tuple[int, str]:
    """The pair length and where it came from, as the bi-encoder's settings are resolved: the flag, else the length
    the model was trained with (`simlm_reranker.json`), else the paper's (`default`)."""
    if flag is not None:
        return flag, "flags"
    path = Path(model_dir) / RERANKER_CONFIG
    if not path.is_file():
        return default, "paper defaults"
    try:
        return int(read_json(path)["max_length"]), RERANKER_CONFIG
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(path, f"unreadable ({first_line(err)})") from None
