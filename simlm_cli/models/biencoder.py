"""The bi-encoder: one encoder shared by queries and passages, a text's vector its pooled hidden states.

This file is the bi-encoder for training and inference alike: how texts are tokenized (`tokenize_texts`,
`tokenize_passages`), how weights are loaded (`load_encoder`), how hidden states become a vector (`embed`, which
calls `pooling.pool`), and how a trained model is saved (`BiEncoder.save_pretrained`) so that `simlm encode`,
`AutoModel` and `SentenceTransformer` read it alike. Fine-tuning adds its losses in
`simlm_cli.training.finetuning.biencoder`; `simlm_cli.models.encoder.Encoder` batches inference over `embed`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simlm_cli.io.corpus import Passage
from simlm_cli.models import pooling
from simlm_cli.models.loading import load_pretrained
from simlm_cli.models.settings import EncoderSettings, write_settings


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
    """The encoder with its settings (pooling, normalisation, lengths) and tokenizer, as trained and saved."""

    def __init__(self, model_path: str, tokenizer: Any, settings: EncoderSettings):
        super().__init__()
        self.encoder = load_encoder(model_path)
        self.tokenizer = tokenizer
        self.settings = settings

    def embed(self, prefix: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The vectors of the batch's inputs named `prefix`* ("q_input_ids", ...: queries and passages travel in
        one batch)."""
        inputs = {k[len(prefix) :]: v for k, v in batch.items() if k.startswith(prefix)}
        return embed(self.encoder, inputs, self.settings)

    def save_pretrained(self, directory: Path) -> None:
        """An HF encoder directory that `simlm encode`, `AutoModel` and `SentenceTransformer` all load alike."""
        directory = Path(directory)
        self.encoder.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        write_settings(directory, self.settings)
        write_sentence_transformers_config(directory, self.settings, int(self.encoder.config.hidden_size))


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
