"""The bi-encoder that `simlm train` and `simlm distill` fine-tune, and the query groups it learns from.

One encoder is shared by queries and passages; a text's vector is its [CLS] (or mean) hidden state, L2-normalised,
and scores are cosines divided by a temperature (0.02, the paper's). `train` minimises the contrastive loss over
each query's group (1 positive + n hard negatives) and every other passage in the batch; `distill` adds
KL(teacher || student) over the group's re-ranker scores, with the contrastive loss weighted by alpha.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import CorpusFormat, Passage, iter_corpus
from simlm_cli.io.train_file import TrainExample, read_train_file
from simlm_cli.models.encoder import tokenize_passages, tokenize_texts
from simlm_cli.models.settings import EncoderSettings, write_settings
from simlm_cli.training.objective import StepOutput

LOSS_VARIANTS = ("paper", "full")


# -- data ---------------------------------------------------------------------------------------------------------
def load_groups(
    train_file: str | Path,
    corpus: str | Path,
    corpus_format: CorpusFormat = CorpusFormat.auto,
    min_negatives: int = 0,
    need_scores: bool = False,
    limit: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[TrainExample], dict[str, Passage]]:
    """The training queries and just the passages they name (a large corpus is streamed, not held whole)."""
    parsed = read_train_file(train_file, min_negatives=min_negatives, need_scores=need_scores)
    if skipped := parsed.describe_skipped(min_negatives):
        log(skipped)
    examples = parsed.examples[:limit] if limit else parsed.examples
    needed = {c.docid for e in examples for c in (*e.positives, *e.negatives)}
    passages = {p.id: p for p in iter_corpus(corpus, corpus_format, check_duplicates=False) if p.id in needed}
    for example in examples:
        for name, group in (("positives", example.positives), ("negatives", example.negatives)):
            for candidate in group:
                if candidate.docid not in passages:
                    raise InputError(
                        train_file, f"document {candidate.docid!r} is not in the corpus {corpus}",
                        line=example.line, field=name,
                    )  # fmt: skip
    return examples, passages


class GroupData:
    """Micro-batches of query groups: each query with one positive and `negatives` hard negatives, sampled anew
    every epoch by `default_rng([seed, epoch, row])` (so a resumed run draws the same groups)."""

    unit = "queries"

    def __init__(
        self,
        examples: Sequence[TrainExample],
        passages: dict[str, Passage],
        tokenizer: Any,
        settings: EncoderSettings,
        negatives: int,
        seed: int,
        teacher_scores: bool = False,
    ):
        self.examples = examples
        self.passages = passages
        self.tokenizer = tokenizer
        self.settings = settings
        self.negatives = negatives
        self.seed = seed
        self.teacher_scores = teacher_scores

    def __len__(self) -> int:
        return len(self.examples)

    def group(self, row: int, epoch: int) -> tuple[str, list[str], list[float]]:
        """(query, [positive, negative...], scores of the same) for one example in one epoch."""
        example = self.examples[row]
        rng = np.random.default_rng([self.seed, epoch, int(row)])
        positive = example.positives[int(rng.integers(len(example.positives)))]
        chosen = [positive]
        if self.negatives:
            pool = example.negatives
            replace = len(pool) < self.negatives  # too few: some repeat, as the reference implementation does
            picks = rng.choice(len(pool), size=self.negatives, replace=replace)
            chosen += [pool[int(i)] for i in picks]
        return example.query, [c.docid for c in chosen], [c.score if c.score is not None else 0.0 for c in chosen]

    def batch(self, rows: np.ndarray, epoch: int) -> dict[str, Any]:
        queries, docids, scores = [], [], []
        for row in rows:
            query, ids, group_scores = self.group(int(row), epoch)
            queries.append(query)
            docids += ids
            scores.append(group_scores)
        q = tokenize_texts(self.tokenizer, queries, None, self.settings.query_max_length)
        p = tokenize_passages(
            self.tokenizer,
            [self.passages[d] for d in docids],
            self.settings.passage_format,
            self.settings.passage_max_length,
        )
        out = {f"q_{k}": v for k, v in self.tokenizer.pad(q, return_tensors="pt").items()}
        out.update({f"p_{k}": v for k, v in self.tokenizer.pad(p, return_tensors="pt").items()})
        # Which passages are the same document, for the loss (a document can be in several groups of a batch).
        out["doc_ids"] = torch.tensor([doc_key(d) for d in docids], dtype=torch.int64)
        if self.teacher_scores:
            out["teacher_scores"] = torch.tensor(scores, dtype=torch.float32)
        return out


def doc_key(docid: str) -> int:
    """A 64-bit integer naming a document id, the same in every process (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(docid.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


# -- model --------------------------------------------------------------------------------------------------------
def load_encoder(model_path: str) -> nn.Module:
    from transformers import AutoModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        model = AutoModel.from_pretrained(model_path, use_safetensors=True)
    except (OSError, ValueError) as err:
        lines = str(err).strip().splitlines()
        raise SimlmError(f"cannot load {model_path!r} (safetensors only): {lines[0] if lines else err}") from None
    pooler = getattr(model, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)  # unused by cls/mean pooling; frozen so DDP sees no unused trainable weights
    return model


class BiEncoder(nn.Module):
    def __init__(
        self,
        model_path: str,
        tokenizer: Any,
        settings: EncoderSettings,
        temperature: float = 0.02,
        loss: str = "paper",
        alpha: float | None = None,
        teacher_temperature: float = 1.0,
    ):
        super().__init__()
        if loss not in LOSS_VARIANTS:
            raise SimlmError(f"--loss {loss}: expected one of {', '.join(LOSS_VARIANTS)}")
        if temperature <= 0:
            raise SimlmError("--temperature must be positive")
        self.encoder = load_encoder(model_path)
        self.tokenizer = tokenizer
        self.settings = settings
        self.temperature = temperature
        self.loss_variant = loss
        self.alpha = alpha  # None: contrastive only (train); a weight: distillation + alpha x contrastive
        self.teacher_temperature = teacher_temperature

    def embed(self, prefix: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k[len(prefix) :]: v for k, v in batch.items() if k.startswith(prefix)}
        hidden = self.encoder(**inputs).last_hidden_state
        if self.settings.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        pooled = pooled.float()
        return F.normalize(pooled, dim=-1) if self.settings.normalize else pooled

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator | None = None) -> StepOutput:
        from simlm_cli.training.losses import contrastive_loss, distill_loss

        q = self.embed("q_", batch)
        p = self.embed("p_", batch)
        # The losses in fp32 even under bf16/fp16 autocast: at t = 0.02 a bf16 cosine would be off by ~0.2 logits.
        with torch.autocast(device_type=q.device.type, enabled=False):
            contrastive = contrastive_loss(q, p, self.temperature, self.loss_variant, doc_ids=batch.get("doc_ids"))
            if self.alpha is None:
                return StepOutput(contrastive, {"contrastive": contrastive.detach()})
            group = p.shape[0] // q.shape[0]
            student = torch.einsum("bd,bgd->bg", q, p.view(q.shape[0], group, -1)) / self.temperature
            kl = distill_loss(student, batch["teacher_scores"].float(), self.teacher_temperature)
        loss = kl + self.alpha * contrastive
        return StepOutput(loss, {"kl": kl.detach(), "contrastive": contrastive.detach()})

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
    given to sentence-transformers as [title, text] pairs, which its Transformer module tokenizes as pairs.
    """
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if settings.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (directory / "2_Normalize").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": settings.pooling == "cls",
        "pooling_mode_mean_tokens": settings.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n", encoding="utf-8")
    (directory / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    st_config = {"max_seq_length": settings.passage_max_length, "do_lower_case": False}
    (directory / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2) + "\n", encoding="utf-8")
