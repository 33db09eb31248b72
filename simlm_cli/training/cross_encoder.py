"""The SimLM re-ranker (Figure 2): a cross-encoder over (query, passage), trained with the listwise loss.

Each training query contributes a group of n passages: one positive (drawn from its positives) and n-1 hard
negatives (drawn from its negatives, those a retriever ranked high). The model scores each (query, passage) pair
with one logit, and the loss is the cross-entropy of the group's n scores with the positive at index 0. Groups
are re-drawn every epoch by `default_rng([seed, epoch, row])`, so a resumed run sees the same groups.

Queries with no negative left (after dropping any that are also positives) are skipped and counted: a group of
one passage has a zero loss and teaches nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import Passage
from simlm_cli.io.train_file import TrainExample
from simlm_cli.training.losses import listwise_loss
from simlm_cli.training.objective import StepOutput

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


# -- data ---------------------------------------------------------------------------------------------------------
def usable_examples(
    examples: Sequence[TrainExample], path: str | Path, log: Callable[[str], None] = print
) -> list[TrainExample]:
    """The examples with at least one negative that is not also a positive; the rest are skipped and counted."""
    kept = [e for e in examples if _negative_pool(e)]
    if len(kept) < len(examples):
        log(f"{path}: skipped {len(examples) - len(kept)} queries with no negative (a listwise group needs one)")
    if not kept:
        raise InputError(path, "no query has both a positive and a negative to train a re-ranker on")
    return kept


def _negative_pool(example: TrainExample) -> list[str]:
    positives = {c.docid for c in example.positives}
    return [c.docid for c in example.negatives if c.docid not in positives]


class RerankData:
    """Micro-batches of query groups, tokenized as (query, title + " " + text) pairs: group_size rows per query,
    the positive first. `batch(rows, epoch)` is a pure function of its arguments and the seed."""

    unit = "queries"

    def __init__(
        self,
        examples: Sequence[TrainExample],
        passages: dict[str, Passage],
        tokenizer: Any,
        group_size: int,
        max_length: int,
        seed: int,
    ):
        if group_size < 2:
            raise SimlmError("--group-size must be at least 2 (one positive and one negative)")
        self.examples = list(examples)
        self.pools = [_negative_pool(e) for e in self.examples]
        if not all(self.pools):
            raise SimlmError("every training query needs a negative (filter with usable_examples first)")
        self.passages = passages
        self.tokenizer = tokenizer
        self.group_size = group_size
        self.max_length = max_length
        self.seed = seed

    def __len__(self) -> int:
        return len(self.examples)

    def group(self, row: int, epoch: int) -> tuple[str, list[str]]:
        """(query, [positive, negative, ...]) of one example in one epoch."""
        example, pool = self.examples[row], self.pools[row]
        rng = np.random.default_rng([self.seed, epoch, int(row)])
        positive = example.positives[int(rng.integers(len(example.positives)))].docid
        wanted = self.group_size - 1
        # Too few negatives: some repeat, so every group has the same size (as the reference implementation).
        picks = rng.choice(len(pool), size=wanted, replace=len(pool) < wanted)
        return example.query, [positive, *(pool[int(i)] for i in picks)]

    def batch(self, rows: np.ndarray, epoch: int) -> dict[str, Any]:
        queries: list[str] = []
        texts: list[str] = []
        for row in rows:
            query, docids = self.group(int(row), epoch)
            queries += [query] * len(docids)
            texts += [self.passages[d].joined() for d in docids]
        return pad_pairs(self.tokenizer, tokenize_pairs(self.tokenizer, queries, texts, self.max_length))


# -- model --------------------------------------------------------------------------------------------------------
def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def load_sequence_classifier(model_path: str, log: Callable[[str], None], require_head: bool = False) -> nn.Module:
    """AutoModelForSequenceClassification with one output, from safetensors weights.

    A checkpoint without a one-logit head (a plain encoder, or a head of another size) gets a new one; training
    logs that, inference (`require_head`) refuses, since an untrained head gives random scores.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=1, use_safetensors=True, output_loading_info=True, ignore_mismatched_sizes=True
        )
    except (OSError, ValueError) as err:
        raise SimlmError(
            f"cannot load {model_path!r} as a cross-encoder (safetensors only): {_first_line(err)}"
        ) from None
    fresh = [str(k) for k in info.get("missing_keys", [])] + [str(k[0]) for k in info.get("mismatched_keys", [])]
    if fresh:
        if require_head:
            raise SimlmError(f"{model_path}: not a trained re-ranker (no weights for {', '.join(sorted(fresh)[:3])})")
        log(f"{model_path}: no one-score classification head in the checkpoint; initialised {', '.join(sorted(fresh))}")
    return model


class CrossEncoder(nn.Module):
    """The re-ranker being trained: `forward(batch, rng)` scores every pair and returns the listwise loss."""

    def __init__(
        self,
        model_path: str,
        tokenizer: Any,
        group_size: int,
        max_length: int = DEFAULT_MAX_LENGTH,
        log: Callable[[str], None] = print,
    ):
        super().__init__()
        self.model = load_sequence_classifier(model_path, log)
        self.model.config.sentence_transformers = dict(ST_IDENTITY)
        self.tokenizer = tokenizer
        self.group_size = group_size
        self.max_length = max_length
        self.base_model_path = model_path

    def scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One logit per (query, passage) row of the batch, as float32 of shape (queries, group)."""
        return self.model(**batch).logits.float().view(-1, self.group_size)

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator | None = None) -> StepOutput:
        return StepOutput(listwise_loss(self.scores(batch)))

    def save_pretrained(self, directory: Path) -> None:
        """HF model + tokenizer (AutoModelForSequenceClassification and sentence-transformers' CrossEncoder load
        it alike) and `simlm_reranker.json` with the input length."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        _set_tokenizer_max_length(directory, self.max_length)
        meta = {"max_length": self.max_length, "group_size": self.group_size, "base_model": self.base_model_path}
        (directory / RERANKER_CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _set_tokenizer_max_length(directory: Path, max_length: int) -> None:
    """CrossEncoder(dir) cuts inputs at the tokenizer's model_max_length: make that the trained length."""
    path = directory / "tokenizer_config.json"
    if path.is_file():
        config = json.loads(path.read_text(encoding="utf-8"))
        config["model_max_length"] = max_length
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def reranker_max_length(model_dir: str | Path, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The input length a re-ranker was trained with (`simlm_reranker.json`), else `default`."""
    path = Path(model_dir) / RERANKER_CONFIG
    if not path.is_file():
        return default
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["max_length"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(path, f"unreadable ({_first_line(err)})") from None
