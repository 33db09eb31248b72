"""The bi-encoder: one encoder shared by queries and passages, a text's vector its pooled hidden states.

This file is the bi-encoder for training and inference alike, one class, `BiEncoder`: how texts are tokenized
(`tokenize_texts`, `tokenize_passages`), how weights are loaded (`load_encoder`, or a backend's model for
inference), how hidden states become a vector (`embed`, which calls `pooling.pool`), how a trained model is saved
(`save_pretrained`) so that `simlm encode`, `AutoModel` and `SentenceTransformer` read it alike, and how inference
runs in length-sorted batches (`encode_passages`, `encode_queries`, `encode_stream`). Training gives it a loss
module (`simlm_cli.training.losses`), which `forward` applies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from simlm_cli.backends import load_model
from simlm_cli.device import Precision, Runtime
from simlm_cli.io.corpus import Passage
from simlm_cli.model_card import RETRIEVER_CARD, CardKind
from simlm_cli.models import pooling
from simlm_cli.models.batching import PREFETCH, default_batching, length_sorted_batches, prefetched, run_batches
from simlm_cli.models.loading import load_pretrained, load_tokenizer
from simlm_cli.models.settings import EncoderSettings, resolve_model_path, write_settings


# -- tokenization ---------------------------------------------------------------------------------------------
def tokenize_texts(tokenizer: Any, texts: list[str], pairs: list[str] | None, max_length: int) -> dict[str, list]:
    """Unpadded token ids (and token types) of texts, or of (text, pair) pairs, truncated to `max_length`."""
    kwargs = {"truncation": True, "max_length": max_length, "padding": False, "return_attention_mask": False}
    if pairs is None:
        return dict(tokenizer(texts, **kwargs))
    return dict(tokenizer(texts, pairs, **kwargs))


# The title the published SimLM checkpoints were trained and are used with for a passage that has none (their
# model card's `encode_passage(tokenizer, passage, title='-')`, and MS MARCO's title file in the authors' data).
NO_TITLE = "-"


def tokenize_passages(
    tokenizer: Any, passages: Sequence[Passage], passage_format: str, max_length: int
) -> dict[str, list]:
    """Passages as `passage_format` says: "pair" tokenizes (title, text), the title "-" where there is none, both
    cut by the tokenizer's default (longest first), as the SimLM checkpoints' own code does; "concat" tokenizes
    title + " " + text (the text alone without a title), as sentence-transformers models expect. Training and
    encoding both use this."""
    if passage_format == "concat":
        return tokenize_texts(tokenizer, [p.joined() for p in passages], None, max_length)
    titles = [p.title or NO_TITLE for p in passages]
    return tokenize_texts(tokenizer, titles, [p.text for p in passages], max_length)


# -- the model ------------------------------------------------------------------------------------------------
def load_encoder(model: str, **kwargs: Any) -> nn.Module:
    """The encoder's weights (AutoModel; extra keyword arguments go to `from_pretrained`); its pooler, unused by
    cls/mean pooling, is frozen so that DDP sees no unused trainable weights."""
    encoder = load_pretrained(model, **kwargs)
    pooler = getattr(encoder, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)
    return encoder


def embed(encoder: nn.Module, inputs: dict[str, torch.Tensor], settings: EncoderSettings) -> torch.Tensor:
    """The vectors of a padded batch (input_ids, attention_mask, ...): what training and `simlm encode` compute."""
    hidden = encoder(**inputs).last_hidden_state
    return pooling.pool(hidden, inputs["attention_mask"], settings.pooling, settings.normalize)


class BiEncoder(nn.Module):
    """The encoder with its settings (pooling, normalisation, lengths) and tokenizer, for training and inference.

    `BiEncoder.for_training` loads the PyTorch weights to train with a loss (`forward`) and save
    (`save_pretrained`); `BiEncoder.load` loads them on a runtime's backend (PyTorch, OpenVINO) to encode texts in
    length-sorted batches. Batches hold `batch_size` texts, or as many as fit `max_batch_tokens` padded tokens
    (both: whichever is smaller); defaults: `default_batching`."""

    def __init__(
        self,
        encoder: Any,
        tokenizer: Any,
        settings: EncoderSettings,
        runtime: Runtime | None = None,
        loss: nn.Module | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
    ):
        super().__init__()
        self.encoder = encoder  # a Hugging Face module, or a backend's model called alike
        self.tokenizer = tokenizer
        self.settings = settings
        self.loss = loss
        self.runtime = runtime or Runtime("cpu", Precision.fp32)
        # Small batches are fastest on CPUs (cache-resident activations: 16 beat 128 by 1.4x on a 2-core EPYC, and
        # OpenVINO int8 ran 78.8 passages/s at 16 against 76.2 at 8 and 69.7 at 32); GPUs want large ones.
        self.batch_size, self.max_batch_tokens = default_batching(
            self.runtime.device_type, batch_size, max_batch_tokens
        )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def for_training(
        cls, model_path: str, tokenizer: Any, settings: EncoderSettings, loss: nn.Module | None = None
    ) -> BiEncoder:
        """The PyTorch weights of `model_path`, to train with `loss` (a module of `simlm_cli.training.losses`)."""
        return cls(load_encoder(model_path), tokenizer, settings, loss=loss)

    @classmethod
    def load(
        cls,
        settings: EncoderSettings,
        runtime: Runtime,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
    ) -> BiEncoder:
        """The model `settings` names, ready for inference on `runtime`'s backend."""
        from simlm_cli.console import info

        encoder = load_model(resolve_model_path(settings.model), "encoder", runtime, load_encoder, info)
        return cls(encoder, load_tokenizer(settings.model), settings, runtime, None, batch_size, max_batch_tokens)

    @property
    def dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def card_kind(self) -> CardKind:
        """What the model card says was trained, and how (the loss's note)."""
        return RETRIEVER_CARD.noted(getattr(self.loss, "card_note", ""))

    # -- training -------------------------------------------------------------------------------------------
    def embed(self, prefix: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The vectors of the batch's inputs named `prefix`* ("q_input_ids", ...: queries and passages travel in
        one batch)."""
        inputs = {k[len(prefix) :]: v for k, v in batch.items() if k.startswith(prefix)}
        return embed(self.encoder, inputs, self.settings)

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator | None = None) -> Any:
        """The training loss of a batch of query groups (a `StepOutput`)."""
        if self.loss is None:
            raise TypeError("this BiEncoder was built without a loss (BiEncoder.for_training(..., loss=...))")
        q = self.embed("q_", batch)
        p = self.embed("p_", batch)
        # The losses in fp32 even under bf16/fp16 autocast: at t = 0.02 a bf16 cosine would be off by ~0.2 logits.
        with torch.autocast(device_type=q.device.type, enabled=False):
            return self.loss(q, p, batch)

    def save_pretrained(self, directory: Path) -> None:
        """An HF encoder directory that `simlm encode`, `AutoModel` and `SentenceTransformer` all load alike."""
        directory = Path(directory)
        self.encoder.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        write_settings(directory, self.settings)
        write_sentence_transformers_config(directory, self.settings, self.dim)

    # -- inference ------------------------------------------------------------------------------------------
    def tokenize_passages(self, passages: Sequence[Passage]) -> dict[str, list]:
        return tokenize_passages(
            self.tokenizer, passages, self.settings.passage_format, self.settings.passage_max_length
        )

    def tokenize_queries(self, queries: Sequence[str]) -> dict[str, list]:
        return tokenize_texts(self.tokenizer, list(queries), None, self.settings.query_max_length)

    def _pad(self, tokens: dict[str, list], rows: np.ndarray) -> dict[str, Any]:
        """The batch of `rows` as host tensors, padded to its longest row; pinned on CUDA, so that the copy to the
        device can run asynchronously (non_blocking) while the host goes on."""
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
        tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
        return {k: v.pin_memory() for k, v in tensors.items()} if self.runtime.device_type == "cuda" else tensors

    def batches(self, tokens: dict[str, list]) -> list[tuple[np.ndarray, dict[str, Any]]]:
        """(row numbers, padded host tensors) of each length-sorted batch of tokenized inputs: the CPU's share of
        the work, which `encode_stream` does on a background thread."""
        ids = tokens.get("input_ids", [])  # pair-format passages tokenize zero passages to {}
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        rows = length_sorted_batches(lengths, self.batch_size, self.max_batch_tokens)
        return [(r, self._pad(tokens, r)) for r in rows]

    def run(
        self, batches: list[tuple[np.ndarray, dict[str, Any]]], count: int, on_batch: Callable[[int], None] | None
    ) -> np.ndarray:
        """The vectors of `count` inputs from their batches, in input order (`run_batches`)."""

        def forward(inputs: dict[str, Any]) -> torch.Tensor:
            return embed(self.encoder, inputs, self.settings)

        return run_batches(batches, count, (self.dim,), self.runtime, forward, on_batch)

    def encode_tokens(self, tokens: dict[str, list], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode tokenized inputs in length-sorted batches; rows come back in input order."""
        return self.run(self.batches(tokens), len(tokens.get("input_ids", [])), on_batch)

    def encode_passages(self, passages: Sequence[Passage], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        return self.encode_tokens(self.tokenize_passages(passages), on_batch)

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encode_tokens(self.tokenize_queries(queries))

    def encode_stream(
        self,
        chunks: Iterable[Sequence[Passage]],
        on_batch: Callable[[int], None] | None = None,
        prefetch: int | None = None,
    ) -> Iterator[tuple[Sequence[Passage], np.ndarray]]:
        """(chunk, its vectors) for each chunk of passages, in order. The next `prefetch` chunks are tokenized and
        padded on a background thread while the model encodes this one (0: all on this thread, one after the
        other; None: PREFETCH); the vectors are the same either way."""
        prefetch = PREFETCH if prefetch is None else prefetch

        def prepare(chunk: Sequence[Passage]) -> list[tuple[np.ndarray, dict[str, Any]]]:
            return self.batches(self.tokenize_passages(chunk))

        for chunk, batches in prefetched(chunks, prepare, prefetch):
            yield chunk, self.run(batches, len(chunk), on_batch)


def write_sentence_transformers_config(directory: Path, settings: EncoderSettings, dim: int) -> None:
    """modules.json + Pooling (+ Normalize) in the long-standing format every sentence-transformers release reads.

    Passages longer than the passage limit are cut the same way (max_seq_length); a "pair" model's passages are
    given to sentence-transformers as [title, text] pairs (["-", text] without a title), which its Transformer
    module tokenizes as pairs.
    """
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if settings.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (directory / "2_Normalize").mkdir(exist_ok=True)
    pooling_config = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": settings.pooling == "cls",
        "pooling_mode_mean_tokens": settings.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config, indent=2) + "\n", encoding="utf-8")
    (directory / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    st_config = {"max_seq_length": settings.passage_max_length, "do_lower_case": False}
    (directory / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2) + "\n", encoding="utf-8")
