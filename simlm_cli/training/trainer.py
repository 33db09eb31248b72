"""The shared training loop: AdamW, warmup + linear decay, accumulation, clipping, precision, DDP.

Written for `simlm pretrain`; `train`, `rerank` and `distill` reuse it with their own objectives (any module
whose `forward(batch, rng)` returns a `StepOutput`). Checkpoints and exact resumption are `checkpoints.py`,
torchrun set-up `distributed.py`, the log and loss plot `train_log.py`, the data order `data.py`.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlm_cli.defaults import SEED
from simlm_cli.device import Precision, Runtime, resolve_runtime
from simlm_cli.dry_run import PASSAGES as DRY_RUN_PASSAGES
from simlm_cli.dry_run import TRAIN_BATCH as DRY_RUN_BATCH
from simlm_cli.dry_run import TRAIN_STEPS as DRY_RUN_STEPS
from simlm_cli.errors import SimlmError
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.io.files import atomic_directory, model_write
from simlm_cli.model_card import write_training_card
from simlm_cli.models.settings import PAPER_SETTINGS
from simlm_cli.training.checkpoints import (
    TrainState,
    list_checkpoints,
    save_checkpoint,
    start_step,
)
from simlm_cli.training.data import DataOrder, TrainData
from simlm_cli.training.distributed import (
    Dist,
    accumulating,
    barrier,
    finish,
    init_distributed,
    sum_across,
    wrap_model,
)
from simlm_cli.training.pretraining.data import TextData, load_texts
from simlm_cli.training.run_dir import EPOCHS, check_train_output, record_written
from simlm_cli.training.train_log import (
    LOG_FILE,
    PLOT_FILE,
    StepSums,
    Window,
    append_record,
    log_line,
    plot_losses,
    read_log,
    reduce_record,
)


@dataclass(frozen=True)
class TrainConfig:
    """What a training run was asked for. Never changed: the values a run derives from it (the batch from
    --global-batch-size, a dry run's caps, the steps from --epochs, the warmup) are a new one, `Trainer.config`."""

    objective: str
    corpus: str
    output: str
    objective_options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    corpus_format: CorpusFormat = CorpusFormat.auto
    max_steps: int = 10000
    epochs: float | None = None  # when set, max_steps = this many passes over the data (a dry run still caps it)
    batch_size: int | None = None  # per process per micro-step; default 16 on CPU, 64 on GPU
    global_batch_size: int | None = None  # per optimizer step over all processes; sets batch_size (not both)
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # default: 10% of max_steps
    max_grad_norm: float = 1.0
    max_length: int = PAPER_SETTINGS["passage_max_length"]
    save_steps: int = 1000
    save_total_limit: int = 2
    save_epochs: bool = False  # also write each epoch's whole model to OUTPUT/epochs/epoch-N (early stopping)
    log_steps: int = 10
    seed: int = SEED
    device: str = "auto"
    precision: Precision = Precision.auto
    resume: bool = False
    overwrite: bool = False  # replace an earlier run's output (only what it wrote)
    dry_run: bool = False
    max_passages: int | None = None
    stop_at_step: int | None = None  # stop early as if preempted (tests of --resume)
    train_file: str | None = None  # train, distill, rerank train: named in the model card
    train_only: str = "all"  # pretrain --train-only: recorded, and fixed on --resume (the optimizer holds that set)
    # the command's resolved options (`simlm_cli.commands.config`), written to OUTPUT/simlm-config.json
    run_config: dict[str, Any] | None = None


# -- optimisation ---------------------------------------------------------------------------------------------
FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (Hugging Face Trainer's default since torch 2.8): on the CPU torch otherwise steps AdamW in a
    # Python loop over tensors, ~3x slower (~0.9 s a step for MiniLM's 22.7M parameters on 2 cores). The same
    # update; float rounding differs in the last bit.
    fused = all(p.device.type in FUSED_ADAMW_DEVICES and p.is_floating_point() for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=lr, fused=True if fused else None)


def warmup_linear(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def micro_seed(seed: int, step: int, micro: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + micro * 104_729 + rank * 15_485_863) % (2**62)


def per_process_batch(global_batch: int, world: int, grad_accum: int) -> int:
    """The batch of one process's micro-step that makes `global_batch` per optimizer step over `world` processes
    accumulating `grad_accum` micro-steps each; a global batch that does not divide evenly is refused."""
    if global_batch < 1:
        raise SimlmError("--global-batch-size must be at least 1")
    if grad_accum < 1:
        raise SimlmError("--grad-accum must be at least 1")
    share = world * grad_accum
    if global_batch % share:
        raise SimlmError(
            f"--global-batch-size {global_batch} does not split evenly over {world} process(es) x --grad-accum "
            f"{grad_accum}: give a multiple of {share}"
        )
    return global_batch // share


class Trainer:
    """Runs one objective over one corpus as `config` says; `run()` returns the path of the output directory."""

    def __init__(
        self,
        config: TrainConfig,
        build: Callable[[str, Any, Callable[[str], None]], torch.nn.Module],
        tokenizer: Any,
        model_path: str,
        log: Callable[[str], None] = print,
        data: Callable[[TrainConfig], TrainData] | None = None,
        default_batch: tuple[int, int] = (16, 64),
    ):
        """`data` builds the training data once the settings are final (a dry run shrinks them); the default
        reads `config.corpus` as pretraining text. `default_batch`: the batch on CPU and on an accelerator when
        neither --batch-size nor --global-batch-size is given."""
        self.config = config  # replaced, not changed, by the values `run` derives from it
        self.default_batch = default_batch
        self.make_data = data or self._text_data
        self.build = build
        self.tokenizer = tokenizer
        self.model_path = model_path
        self.log = log

    def _text_data(self, c: TrainConfig) -> TrainData:
        return TextData(load_texts(c.corpus, c.corpus_format, c.max_passages), self.tokenizer, c.max_length)

    # The pieces --------------------------------------------------------------------------------------------
    def _settings(self, c: TrainConfig, runtime: Runtime, d: Dist) -> TrainConfig:
        """`c` with the batch (from --global-batch-size, else the default) and a dry run's caps, checked."""
        batch = c.batch_size
        if c.global_batch_size is not None:
            if batch is not None:
                raise SimlmError("give --batch-size (per process) or --global-batch-size (all processes), not both")
            # The same flags then train alike on 1 or 8 GPUs (in-batch negatives are gathered across processes).
            batch = per_process_batch(c.global_batch_size, d.world, c.grad_accum)
        if c.dry_run:
            c = replace(
                c, max_steps=min(c.max_steps, DRY_RUN_STEPS), save_steps=min(c.save_steps, 2), log_steps=1,
                max_passages=min(c.max_passages or DRY_RUN_PASSAGES, DRY_RUN_PASSAGES),
            )  # fmt: skip
            batch = min(batch or DRY_RUN_BATCH, DRY_RUN_BATCH)
        if batch is None:
            batch = self.default_batch[0 if runtime.device_type == "cpu" else 1]
        c = replace(c, batch_size=batch)
        for name in ("max_steps", "batch_size", "grad_accum", "save_steps", "log_steps", "max_length"):
            if getattr(c, name) < 1:
                raise SimlmError(f"--{name.replace('_', '-')} must be at least 1")
        if c.lr <= 0:
            raise SimlmError("--lr must be positive")
        return c

    def _schedule(self, c: TrainConfig, size: int, d: Dist) -> TrainConfig:
        """`c` with the steps from --epochs (once the data size is known) and the default warmup (10% of them)."""
        batches = DataOrder(size, c.batch_size, c.seed, 0, d.world).batches_per_epoch
        self.steps_per_epoch = max(1, math.ceil(batches / c.grad_accum))
        if c.epochs is not None:
            if c.epochs <= 0:
                raise SimlmError("--epochs must be positive")
            steps = max(1, math.ceil(c.epochs * batches / c.grad_accum))
            c = replace(c, max_steps=min(c.max_steps, steps) if c.dry_run else steps)
        if c.warmup_steps is None:
            c = replace(c, warmup_steps=max(0, c.max_steps // 10))
        return c

    def _stop_if_not_finite(self, loss: float, step: int, d: Dist) -> None:
        """A NaN or infinite loss (a NaN teacher score, an overflow) would poison every weight at the next
        optimizer step: stop before it, so the last checkpoint stays the last good model. All ranks agree."""
        bad = torch.tensor([0.0 if math.isfinite(loss) else 1.0], dtype=torch.float64)
        if float(sum_across(d, bad)[0]) == 0:
            return
        checkpoints = list_checkpoints(Path(self.config.output))
        kept = (
            f"the last good checkpoint is {checkpoints[-1]} (--resume continues from it)"
            if checkpoints
            else "no checkpoint was saved yet"
        )
        raise SimlmError(
            f"step {step}: the loss is not finite ({loss}); stopped before updating the weights, {kept}. Check the "
            "inputs (teacher scores), --lr and --precision"
        )

    # The loop ------------------------------------------------------------------------------------------------
    def run(self) -> Path:
        asked = self.config
        output = Path(asked.output)
        # Every rank checks before the rendezvous in init_distributed; the main one claims the directory after it,
        # so no rank can find it already claimed by this very run.
        check_train_output(output, asked.resume, asked.overwrite)
        runtime = resolve_runtime(asked.device, asked.precision, training=True)
        d = init_distributed(runtime)
        settled = self._settings(asked, runtime, d)
        data = self.make_data(settled)
        self.config = c = self._schedule(settled, len(data), d)
        state = self._build(runtime, d)
        start = start_step(c, state, d, self.log)
        wrapped = wrap_model(state.model, runtime, d)
        order = DataOrder(len(data), c.batch_size, c.seed, d.rank, d.world)
        if d.main:
            self.log(self._describe(data, state.model, runtime, d, start))
        records = read_log(output, start) if d.main else []
        end = c.max_steps if c.stop_at_step is None else min(c.max_steps, c.stop_at_step)
        window = Window()
        for step in range(start, end):
            began = time.perf_counter()
            sums = self._accumulate(wrapped, data, order, step, runtime, d, state.scaler)
            self._stop_if_not_finite(sums.losses["loss"], step + 1, d)
            lr, grad_norm = self._update(state)
            done = step + 1
            window.add(sums.tokens, time.perf_counter() - began)
            if done % c.log_steps == 0 or done == end or done == start + 1:
                record = reduce_record(done, sums, window, lr, grad_norm, d)
                window = Window()
                if d.main:
                    records.append(record)
                    append_record(output, record)
                    self.log(log_line(record, c.max_steps))
            if done % c.save_steps == 0 or done == c.max_steps:
                save_checkpoint(c, done, state, d)
            if c.save_epochs and d.main and (done % self.steps_per_epoch == 0 or done == c.max_steps):
                self._save_epoch(state.model, output, math.ceil(done / self.steps_per_epoch))
        if d.main and end == c.max_steps:
            self._write_output(state.model, output, records)
        barrier(d)
        finish(d)
        return output

    def _build(self, runtime: Runtime, d: Dist) -> TrainState:
        """The model (seeded, on the device, in training mode), its optimizer, schedule and fp16 grad scaler."""
        c = self.config
        random.seed(c.seed)
        np.random.seed(c.seed)
        torch.manual_seed(c.seed)
        model = self.build(self.model_path, self.tokenizer, self.log if d.main else (lambda _m: None))
        model.to(runtime.device)
        model.train()
        self.model = model
        optimizer = build_optimizer(model, c.lr, c.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(c.warmup_steps, c.max_steps))
        scaler = torch.amp.GradScaler("cuda") if runtime.precision is Precision.fp16 else None
        return TrainState(model, optimizer, scheduler, scaler)

    def _describe(self, data: TrainData, model: torch.nn.Module, runtime: Runtime, d: Dist, start: int) -> str:
        c = self.config
        unit = getattr(data, "unit", "passages")
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return (
            f"{c.objective}: {len(data)} {unit}, {trainable / 1e6:.1f}M trainable parameters, "
            f"{runtime.describe()}, {d.world} process(es) x batch {c.batch_size} x accumulation {c.grad_accum} "
            f"= {d.world * c.batch_size * c.grad_accum} {unit} per step, steps {start}->{c.max_steps}"
        )

    def _accumulate(
        self, wrapped: torch.nn.Module, data: TrainData, order: DataOrder, step: int, runtime: Runtime, d: Dist,
        scaler: Any,
    ) -> StepSums:  # fmt: skip
        """Forward and backward over the step's `grad_accum` micro-batches; returns their summed outputs."""
        c = self.config
        device = torch.device(runtime.device)
        sums = StepSums()
        for micro in range(c.grad_accum):
            micro_batch = step * c.grad_accum + micro
            rows = order.indices(micro_batch)
            batch = data.batch(rows, order.position(micro_batch)[0])
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            rng = torch.Generator(device=device)
            rng.manual_seed(micro_seed(c.seed, step, micro, d.rank))
            with accumulating(wrapped, sync=micro == c.grad_accum - 1 or d.world == 1):
                with runtime.autocast():
                    out = wrapped(batch, rng)
                loss = out.loss / c.grad_accum
                (scaler.scale(loss) if scaler is not None else loss).backward()
            sums.add(out, batch, rows)
        return sums

    def _update(self, state: TrainState) -> tuple[float, torch.Tensor]:
        """Clip, step the optimizer (through the grad scaler under fp16) and the schedule; returns the step's
        (lr, gradient norm)."""
        optimizer, scaler = state.optimizer, state.scaler
        if scaler is not None:
            scaler.unscale_(optimizer)
        trainable = [p for p in state.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, self.config.max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr = state.scheduler.get_last_lr()[0]
        state.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return lr, grad_norm  # a tensor: read (a device sync) only on the steps that are logged

    def _save_epoch(self, model: torch.nn.Module, output: Path, epoch: int) -> None:
        """--save-epochs: the model as it stands after `epoch` passes (the last one possibly partial), a directory
        that loads like the final output, so that a recipe can evaluate each epoch on a dev split and keep the
        best (early stopping) without retraining."""
        record_written(output, [EPOCHS])  # recorded before it lands, so --overwrite removes it with the rest
        target = output / EPOCHS / f"epoch-{epoch}"
        with atomic_directory(target) as tmp, model_write(target, f"epoch {epoch}'s model"):
            model.save_pretrained(tmp)
        self.log(f"wrote {target}")

    def _write_output(self, model: torch.nn.Module, output: Path, records: list[dict[str, Any]]) -> None:
        """Whatever the model saves (HF files, extra parts) and the loss plot, each entry moved in whole."""
        written = []
        with tempfile.TemporaryDirectory(prefix=".final.", dir=output) as tmp_name:
            tmp = Path(tmp_name)
            with model_write(output, "the trained model"):
                model.save_pretrained(tmp)
            plot_losses(records, tmp / PLOT_FILE)
            write_training_card(
                tmp, self.config, model.card_kind, records, name=self.config.output
            )  # README.md, after any the model saved; what the model is, its objective declares
            entries = sorted(tmp.iterdir())
            record_written(output, [entry.name for entry in entries])
            for entry in entries:
                written.append(entry.name + "/" if entry.is_dir() else entry.name)
                target = output / entry.name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(entry, target)
        if (output / LOG_FILE).exists():  # appended step by step, not in the temporary directory
            written.append(LOG_FILE)
        self.log(f"wrote {output}: {', '.join(written)}")
