"""The fine-tuning commands' configs (`train`, `distill`, `rerank train`): the shared trainer's flags and the
bi-encoder's, each declared once, and what turns them into the library's `TrainConfig` / `RetrieverSpec`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from simlm_cli import dry_run
from simlm_cli.defaults import SEED
from simlm_cli.device import TrainingPrecision
from simlm_cli.flags import flag, group
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.options.shared import (
    AUTO_PRECISION_HELP,
    TextEncoding,
    complete_from,
    corpus_format_flag,
    device_flag,
)

if TYPE_CHECKING:
    from simlm_cli.pipeline.train import RetrieverSpec
    from simlm_cli.training.trainer import TrainConfig

DEFAULT_MODEL_HELP = "Default: sentence-transformers/all-MiniLM-L6-v2 (embedded weights)."


@dataclass(frozen=True, kw_only=True)
class RunControl:
    """Checkpointing, logging and runtime flags every training command shares (`pretrain` too)."""

    grad_accum: int = flag("--grad-accum", default=1, help="Micro-steps accumulated per optimizer step.")
    max_grad_norm: float = flag("--max-grad-norm", default=1.0, help="Gradient clipping norm.")
    save_steps: int = flag("--save-steps", default=1000, help="Checkpoint every N steps (and at the end).")
    save_total_limit: int = flag("--save-total-limit", default=2, min=1, help="Checkpoints kept (the newest).")
    log_steps: int = flag("--log-steps", default=10, help="Log (stderr and train_log.jsonl) every N steps.")
    device: str = device_flag()
    precision: TrainingPrecision = flag("--precision", default=TrainingPrecision.auto, help=AUTO_PRECISION_HELP)
    resume: bool = flag(
        "--resume", default=False, help="Continue exactly from the newest checkpoint in --output/checkpoints."
    )
    overwrite: bool = flag(
        "--overwrite",
        default=False,
        help="Replace an earlier simlm run in --output (only the files it wrote, listed in its .simlm-run.json). "
        "Without it (or --resume) a non-empty --output is refused.",
    )


@dataclass(frozen=True, kw_only=True)
class TrainerFlags:
    """The optimisation flags every fine-tuning command shares, with the training run's (`RunControl`)."""

    max_steps: int | None = flag("--max-steps", default=None, help="Optimizer steps (overrides --epochs).")
    epochs: float = flag("--epochs", default=1.0, help="Passes over the training queries (fractions allowed).")
    global_batch_size: int | None = flag(
        "--global-batch-size",
        default=None,
        min=1,
        help="Queries per optimizer step over all processes (the paper's 64), whatever their number: each process "
        "takes G / (processes x --grad-accum), an error if that is not whole. Replaces --batch-size. In-batch "
        "negatives are gathered across processes, so with --grad-accum 1 every query meets the whole global batch's "
        "passages.",
    )
    lr: float = flag("--lr", default=2e-5, help="Peak AdamW learning rate.")
    weight_decay: float = flag("--weight-decay", default=0.01, help="AdamW weight decay (not on biases/norms).")
    warmup_steps: int | None = flag(
        "--warmup-steps", default=None, help="Linear warmup steps. Default: 10% of the steps."
    )
    save_epochs: bool = flag(
        "--save-epochs",
        default=False,
        help="Also write each epoch's model to OUTPUT/epochs/epoch-N (to pick one on a dev split).",
    )
    seed: int = flag("--seed", default=SEED, help="Seeds initialisation, data order and negative sampling.")
    run: RunControl = group(RunControl)
    dry_run: bool = flag(
        "--dry-run",
        default=False,
        help=f"{dry_run.TRAIN_STEPS} steps on a few queries with batch {dry_run.TRAIN_BATCH}, for smoke tests.",
    )

    def train_config(self, objective: str, train_file: str, corpus: str, output: str, **own: Any) -> TrainConfig:
        """The library's `TrainConfig` for `objective`, from these flags and the command's own (`own`: model,
        batch_size, ...), after the output directory is checked (before a model is loaded or data read)."""
        # torch comes with the trainer: imported when a training command runs, not when the CLI starts.
        from simlm_cli.commands.config import resolved_options
        from simlm_cli.training.run_dir import check_train_output
        from simlm_cli.training.trainer import TrainConfig

        check_train_output(output, self.run.resume, self.run.overwrite, [train_file, corpus, own.get("model")])
        values = asdict(self)
        values |= values.pop("run")
        # --max-steps, when given, overrides --epochs: the trainer then counts steps, not passes
        max_steps, epochs = values.pop("max_steps"), values.pop("epochs")
        return TrainConfig(
            objective=objective, corpus=corpus, output=output, train_file=train_file,
            max_steps=max_steps if max_steps is not None else 10**9, epochs=None if max_steps is not None else epochs,
            run_config=resolved_options(), **values, **own,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RetrieverFlags:
    """The bi-encoder fine-tuning commands' flags (`train`, `distill`): how the encoder encodes, and its loss."""

    corpus_format: CorpusFormat = corpus_format_flag()
    encoding: TextEncoding = group(TextEncoding)
    temperature: float = flag("--temperature", default=0.02, help="Scores are cosine / temperature.")
    loss: str = flag(
        "--loss",
        default="paper",
        autocompletion=complete_from(("paper", "full")),
        help="paper: Eq. 3 (in-batch + hard negatives, positive-passage-vs-negatives terms); full: also the "
        "query-query terms, as the reference implementation.",
    )
    batch_size: int | None = flag(
        "--batch-size", default=None, help="Queries per process per micro-step. Default 16 on CPU."
    )

    def training(
        self, objective: str, config: TrainRetrieverConfig | DistillConfig, **spec_own: Any
    ) -> tuple[RetrieverSpec, TrainConfig]:
        """The library's `RetrieverSpec` (what the retriever is and learns from) and `TrainConfig` for a `train`
        or `distill` config holding these flags; `spec_own`: distill's values."""
        from simlm_cli.pipeline.train import RetrieverSpec

        spec = RetrieverSpec(
            train_file=config.train_file, **self.encoding.overrides(), negatives=config.negatives,
            temperature=self.temperature, loss=self.loss, **spec_own,
        )  # fmt: skip
        return spec, config.trainer.train_config(
            objective, config.train_file, config.corpus, config.output, model=config.model,
            corpus_format=self.corpus_format, batch_size=self.batch_size,
        )  # fmt: skip


def _train_file(help: str) -> Any:
    return flag("--train-file", "-t", help=help)


def _corpus() -> Any:
    return flag("--corpus", "-c", help="The passages the training file names (any corpus format, .gz ok).")


def _output(help: str) -> Any:
    return flag("--output", "-o", help=help)


_RETRIEVER_OUTPUT = "Output directory: the model (HF format), checkpoints/, train_log.jsonl, loss.png."


@dataclass(frozen=True, kw_only=True)
class TrainRetrieverConfig:
    """`simlm train`: a bi-encoder on mined hard negatives."""

    train_file: str = _train_file("Training JSONL (from `simlm mine`; teacher scores from `simlm rerank score`).")
    corpus: str = _corpus()
    output: str = _output(_RETRIEVER_OUTPUT)
    model: str | None = flag(
        "--model", "-m", default=None, help=f"HF model directory or hub name. {DEFAULT_MODEL_HELP}"
    )
    negatives: int = flag("--negatives", "-n", default=15, help="Hard negatives per query (re-sampled each epoch).")
    retriever: RetrieverFlags = group(RetrieverFlags)
    trainer: TrainerFlags = group(TrainerFlags)

    def training(self) -> tuple[RetrieverSpec, TrainConfig]:
        return self.retriever.training("train", self)


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """`simlm distill`: a bi-encoder student taught by teacher scores."""

    train_file: str = _train_file("Training JSONL with a teacher score on every passage (`simlm rerank score`).")
    corpus: str = _corpus()
    output: str = _output(_RETRIEVER_OUTPUT)
    model: str | None = flag(
        "--model", "-m", default=None, help=f"The student's initialisation (e.g. Retriever2). {DEFAULT_MODEL_HELP}"
    )
    alpha: float = flag("--alpha", default=0.2, help="Weight of the contrastive loss added to the KL term.")
    teacher_temperature: float = flag(
        "--teacher-temperature", default=1.0, help="The teacher's scores are divided by this before the softmax."
    )
    negatives: int = flag("--negatives", "-n", default=23, help="Negatives per query with teacher scores (paper: 23).")
    retriever: RetrieverFlags = group(RetrieverFlags)
    trainer: TrainerFlags = group(TrainerFlags)

    def training(self) -> tuple[RetrieverSpec, TrainConfig]:
        from simlm_cli.errors import SimlmError

        if self.alpha < 0:
            raise SimlmError("--alpha must be 0 or more")
        if self.teacher_temperature <= 0:
            raise SimlmError("--teacher-temperature must be positive")
        return self.retriever.training("distill", self, alpha=self.alpha, teacher_temperature=self.teacher_temperature)


@dataclass(frozen=True, kw_only=True)
class RerankTrainConfig:
    """`simlm rerank train`: a listwise cross-encoder."""

    train_file: str = _train_file("Training JSONL (from `simlm mine`; teacher scores from `simlm rerank score`).")
    corpus: str = _corpus()
    output: str = _output(
        "Output directory: the re-ranker (HF sequence classifier; loads in sentence-transformers' CrossEncoder), "
        "simlm_reranker.json, checkpoints/, train_log.jsonl, loss.png."
    )
    model: str | None = flag(
        "--model",
        "-m",
        default=None,
        help=f"HF encoder directory or hub name to start from (a one-score head is added if absent). "
        f"{DEFAULT_MODEL_HELP}",
    )
    corpus_format: CorpusFormat = corpus_format_flag()
    group_size: int = flag(
        "--group-size",
        "-n",
        default=8,
        min=2,
        help="Passages per query group: 1 positive + n-1 negatives, re-drawn each epoch (paper: 64 from the top "
        "200). Queries with fewer negatives repeat some; queries with none are skipped and counted.",
    )
    backprop_top: int | None = flag(
        "--backprop-top",
        default=None,
        min=2,
        help="Back-propagate through each group's positive + its M-1 negatives the model scores highest (found by "
        "a pass without gradients, dropout off), as the authors' code does (paper: 16 of 64). Default: the whole "
        "group.",
    )
    max_length: int | None = flag(
        "--max-length",
        default=None,
        help="Tokens per (query, passage) pair; only passages are cut. Default: the model's own (the length a "
        "re-ranker was trained with, simlm_reranker.json), else 192 (the paper's).",
    )
    batch_size: int | None = flag(
        "--batch-size",
        default=None,
        help="Queries per process per micro-step (each brings --group-size pairs). Default: 4 on CPU, 16 on GPU.",
    )
    trainer: TrainerFlags = group(TrainerFlags)

    def train_config(self) -> TrainConfig:
        return self.trainer.train_config(
            "rerank", self.train_file, self.corpus, self.output, model=self.model, corpus_format=self.corpus_format,
            max_length=self.max_length, batch_size=self.batch_size,
        )  # fmt: skip
