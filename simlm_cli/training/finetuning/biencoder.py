"""Fine-tuning the bi-encoder (`simlm train`, `simlm distill`): the query groups it learns from and its losses.

The model is `simlm_cli.models.biencoder.BiEncoder` (one encoder shared by queries and passages, the same
`embed` as `simlm encode`), built with `BiEncoder.for_training(..., loss)`; scores are cosines divided by a
temperature (0.02, the paper's). The loss is a module of `simlm_cli.training.losses`: `train` minimises `ContrastiveLoss` over each query's group (1 positive + n hard
negatives) and every other passage in the batch; `distill` minimises `DistillationLoss`, KL(teacher || student)
over the group's re-ranker scores plus the contrastive loss weighted by alpha.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlm_cli.errors import InputError
from simlm_cli.io.corpus import CorpusFormat, Passage, iter_corpus
from simlm_cli.io.train_file import TrainExample, read_train_file
from simlm_cli.models.biencoder import tokenize_passages, tokenize_texts
from simlm_cli.models.settings import EncoderSettings
from simlm_cli.training.finetuning.groups import draw_group


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
        positive, negatives = draw_group(rng, example.positives, example.negatives, self.negatives)
        chosen = [positive, *negatives]
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
