"""Fine-tune a bi-encoder retriever (`simlm train`, `simlm distill`) with the shared trainer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.training.trainer import TrainConfig, Trainer


@dataclass
class RetrieverSpec:
    """What the retriever is and what it learns from; the optimisation settings are the trainer's `TrainConfig`."""

    train_file: str
    pooling: str | None = "cls"  # None: the model's own (sentence-transformers config), else cls
    normalize: bool | None = True
    query_max_length: int = 32
    passage_max_length: int = 144
    passage_format: str | None = None  # None: the model's own (concat for sentence-transformers models), else pair
    negatives: int = 15
    temperature: float = 0.02
    loss: str = "paper"
    alpha: float | None = None  # distillation: weight of the contrastive loss next to the KL term
    teacher_temperature: float = 1.0


def train_retriever(spec: RetrieverSpec, config: TrainConfig, log: Callable[[str], None] = print) -> Path:
    from simlm_cli.models.encoder import load_tokenizer
    from simlm_cli.models.settings import resolve_model_path, resolve_settings
    from simlm_cli.training.biencoder import BiEncoder, GroupData, load_groups

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
        from simlm_cli.errors import SimlmError

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

    def build(path: str, tok, _log) -> BiEncoder:
        return BiEncoder(path, tok, settings, spec.temperature, spec.loss, spec.alpha, spec.teacher_temperature)

    return Trainer(config, build, tokenizer, model_path, log=log, data=data).run()
