"""Fine-tune with the shared trainer: a bi-encoder retriever (`simlm train`, `simlm distill`) and the cross-encoder
re-ranker (`simlm rerank train`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simlm_cli.errors import SimlmError
from simlm_cli.io.corpus import CorpusFormat, load_passages
from simlm_cli.io.train_file import read_train_file
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.cross_encoder import CrossEncoder, resolve_reranker_max_length
from simlm_cli.models.loading import load_tokenizer
from simlm_cli.models.settings import resolve_model_path, resolve_settings
from simlm_cli.training.finetuning.biencoder import GroupData, load_groups
from simlm_cli.training.finetuning.cross_encoder import RerankData, RerankLoss, usable_examples
from simlm_cli.training.losses import ContrastiveLoss, DistillationLoss
from simlm_cli.training.trainer import TrainConfig, Trainer


@dataclass
class RetrieverSpec:
    """What the retriever is and what it learns from; the optimisation settings are the trainer's `TrainConfig`."""

    train_file: str
    # The encoder settings; None: not given, so the model's own (simlm.json, sentence-transformers config), else the
    # paper's (`resolve_settings`, as `simlm encode` does).
    pooling: str | None = None
    normalize: bool | None = None
    query_max_length: int | None = None
    passage_max_length: int | None = None
    passage_format: str | None = None
    negatives: int = 15
    temperature: float = 0.02
    loss: str = "paper"
    alpha: float | None = None  # distillation: weight of the contrastive loss next to the KL term
    teacher_temperature: float = 1.0


def train_retriever(spec: RetrieverSpec, config: TrainConfig, log: Callable[[str], None] = print) -> Path:
    model_path = resolve_model_path(config.model)
    tokenizer = load_tokenizer(model_path)
    settings = resolve_settings(
        config.model,
        pooling=spec.pooling,
        normalize=spec.normalize,
        query_max_length=spec.query_max_length,
        passage_max_length=spec.passage_max_length,
        passage_format=spec.passage_format,
    )
    distill = spec.alpha is not None
    if spec.negatives < 0:
        raise SimlmError("--negatives must be 0 or more")

    def data(c: TrainConfig) -> GroupData:
        examples, passages = load_groups(
            spec.train_file,
            c.corpus,
            CorpusFormat(c.corpus_format),
            min_negatives=1 if spec.negatives else 0,
            need_scores=distill,
            limit=c.max_passages if c.dry_run else None,
            log=log,
        )
        # Said once the inputs are known good, so a bad input's error stays the only line on stderr.
        log(f"encoder settings: {settings.describe_sources()}")
        log(
            f"retriever: {settings.pooling} pooling, normalise {settings.normalize}, query/passage "
            f"{settings.query_max_length}/{settings.passage_max_length} tokens, passages as {settings.passage_format}, "
            f"1 positive + {spec.negatives} negatives, temperature {spec.temperature}, loss {spec.loss}"
            + (f", distillation (alpha {spec.alpha})" if distill else "")
        )
        short = sum(len(e.negatives) < spec.negatives for e in examples)
        if short:
            # Sampled with replacement to keep every group the same size (as the reference code does); under
            # distillation a repeated negative counts twice in the teacher's distribution too.
            log(
                f"{short} of {len(examples)} queries have fewer than {spec.negatives} negatives: some repeat in their groups"
            )
        return GroupData(examples, passages, tokenizer, settings, spec.negatives, c.seed, teacher_scores=distill)

    def build(path: str, tok: Any, _log: Callable[[str], None]) -> BiEncoder:
        loss = ContrastiveLoss(spec.temperature, spec.loss)
        if distill:
            loss = DistillationLoss(loss, spec.alpha, spec.teacher_temperature)
        return BiEncoder.for_training(path, tok, settings, loss)

    return Trainer(config, build, tokenizer, model_path, log=log, data=data).run()


def train_reranker(
    train_file: str | Path,
    config: TrainConfig,
    group_size: int = 8,
    log: Callable[[str], None] = print,
    cpu_batch: int = 4,
    backprop_top: int | None = None,
) -> Path:
    """Train a cross-encoder on a training file's groups with the shared trainer; returns the output directory.

    `config.batch_size` counts queries (each brings `group_size` pairs); None (and no global batch): `cpu_batch` on
    CPU, 16 on GPU. `backprop_top`: back-propagate through each group's positive and its top-scored negatives only.
    """
    if group_size < 2:
        raise SimlmError("--group-size must be at least 2 (one positive and one negative)")
    if backprop_top is not None and not 2 <= backprop_top <= group_size:
        raise SimlmError(f"--backprop-top must be between 2 and --group-size ({group_size}), got {backprop_top}")
    recorded = {"train_file": str(train_file), "group_size": group_size}
    if backprop_top is not None and backprop_top < group_size:
        recorded["backprop_top"] = backprop_top
    model_path = resolve_model_path(config.model)
    max_length, length_source = resolve_reranker_max_length(model_path, config.max_length)
    config = replace(config, objective_options=config.objective_options | recorded, max_length=max_length)
    tokenizer = load_tokenizer(model_path)

    def data(c: TrainConfig) -> RerankData:
        passages = load_passages(c.corpus, CorpusFormat(c.corpus_format))
        parsed = read_train_file(train_file, corpus_ids=passages)
        if skipped := parsed.describe_skipped(0):
            log(skipped)
        examples = usable_examples(parsed.examples, train_file, log)
        if c.dry_run:
            examples = examples[: c.max_passages]
        return RerankData(examples, passages, tokenizer, group_size, c.max_length, c.seed)

    def build(path: str, tok: Any, build_log: Callable[[str], None]) -> CrossEncoder:
        # Logged here, once the data has been read: a bad training file's error is then the only line.
        top = (
            f" over the positive + the {backprop_top - 1} top-scored negatives"
            if backprop_top is not None and backprop_top < group_size
            else ""
        )
        build_log(
            f"re-ranker: cross-encoder from {config.model or path}, groups of 1 positive + {group_size - 1} "
            f"negatives, listwise loss{top}, pairs of <= {config.max_length} tokens ({length_source})"
        )
        loss = RerankLoss(group_size, backprop_top)
        return CrossEncoder.for_training(path, tok, group_size, config.max_length, build_log, loss)

    return Trainer(config, build, tokenizer, model_path, log=log, data=data, default_batch=(cpu_batch, 16)).run()
