"""The shared training loop: AdamW, warmup + linear decay, accumulation, clipping, precision, DDP, checkpoints.

Written for `simlm pretrain`; `train`, `rerank` and `distill` reuse it with their own objectives (any module
whose `forward(batch, rng)` returns a `StepOutput`).

Exact resumption rests on three facts: the data order is a pure function of (seed, epoch) (`DataOrder`), each
micro-step's masking/sampling generator is seeded from (seed, step, micro, rank), and a checkpoint holds the
model, optimizer, scheduler, grad scaler and every RNG state (python, numpy, torch, CUDA) of every rank.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlm_cli.device import Precision, Runtime, resolve_runtime
from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.io.files import atomic_directory
from simlm_cli.model_card import write_training_card
from simlm_cli.training.data import DataOrder, TextData, TrainData, load_texts
from simlm_cli.training.objective import load_state, save_state

# Resuming with another value of these would not continue the same run (another data order or batch).
_FIXED_ON_RESUME = ("batch_size", "grad_accum", "seed", "corpus", "max_length", "max_passages", "objective_options")
_NOT_COMPARED = ("resume", "stop_at_step", "output")  # differ between the first run and its resumption by design
CHECKPOINTS = "checkpoints"
LOG_FILE = "train_log.jsonl"
PLOT_FILE = "loss.png"
DRY_RUN_STEPS = 3
DRY_RUN_BATCH = 2
DRY_RUN_PASSAGES = 64


@dataclass
class TrainConfig:
    objective: str
    corpus: str
    output: str
    objective_options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    corpus_format: CorpusFormat = CorpusFormat.auto
    max_steps: int = 10000
    epochs: float | None = None  # when set, max_steps = this many passes over the data (a dry run still caps it)
    batch_size: int | None = None  # per process per micro-step; default 16 on CPU, 64 on GPU
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # default: 10% of max_steps
    max_grad_norm: float = 1.0
    max_length: int = 144
    save_steps: int = 1000
    save_total_limit: int = 2
    log_steps: int = 10
    seed: int = 42
    device: str = "auto"
    precision: Precision = Precision.auto
    resume: bool = False
    dry_run: bool = False
    max_passages: int | None = None
    stop_at_step: int | None = None  # stop early as if preempted (tests of --resume)
    train_file: str | None = None  # train, distill, rerank train: named in the model card


# -- distributed --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    owned: bool = False  # this process group was started here (and is ended at the end of the run)

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(runtime: Runtime) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        backend = "nccl" if runtime.device_type == "cuda" else "gloo"
        if runtime.device_type == "cuda":
            torch.cuda.set_device(torch.device(runtime.device))
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), owned)


def _barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _sum_across(d: Dist, values: torch.Tensor) -> torch.Tensor:
    if d.world > 1:
        import torch.distributed as dist

        values = values.clone()
        dist.all_reduce(values)
    return values


# -- optimisation ---------------------------------------------------------------------------------------------
def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def warmup_linear(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def micro_seed(seed: int, step: int, micro: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + micro * 104_729 + rank * 15_485_863) % (2**62)


# -- RNG state --------------------------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _rng_to_json(state: dict[str, Any]) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    return {
        "python": [state["python"][0], list(state["python"][1]), state["python"][2]],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
    }


def _restore_rng(json_state: dict[str, Any], tensors: dict[str, Any]) -> None:
    version, internal, gauss = json_state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss_np = json_state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss_np))
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])


# -- checkpoints ------------------------------------------------------------------------------------------------
def check_train_output(output: str | Path) -> None:
    """Before any work: `--output` may be new, empty, or a directory an earlier simlm training run wrote (its
    train_log.jsonl or checkpoints/). Anything else is the user's: a run would overwrite config.json and delete
    subdirectories (objective/, ...) in it."""
    output = Path(output)
    if not output.exists():
        return
    if not output.is_dir():
        raise SimlmError(f"--output {output}: exists and is not a directory")
    if not any(output.iterdir()) or (output / LOG_FILE).is_file() or (output / CHECKPOINTS).is_dir():
        return
    raise SimlmError(
        f"--output {output}: exists and is not one a simlm training run wrote (no {LOG_FILE} or {CHECKPOINTS}/); "
        "refusing to write into it - remove it or pick another --output"
    )


def list_checkpoints(output: Path) -> list[Path]:
    root = output / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


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
    ):
        """`data` builds the training data once the settings are final (a dry run shrinks them); the default
        reads `config.corpus` as pretraining text."""
        self.config = config
        self.make_data = data or self._text_data
        self.build = build
        self.tokenizer = tokenizer
        self.model_path = model_path
        self.log = log

    def _text_data(self, c: TrainConfig) -> TrainData:
        return TextData(load_texts(c.corpus, c.corpus_format, c.max_passages), self.tokenizer, c.max_length)

    # The pieces --------------------------------------------------------------------------------------------
    def _settings(self, runtime: Runtime) -> None:
        c = self.config
        if c.dry_run:
            c.max_steps = min(c.max_steps, DRY_RUN_STEPS)
            c.batch_size = min(c.batch_size or DRY_RUN_BATCH, DRY_RUN_BATCH)
            c.max_passages = min(c.max_passages or DRY_RUN_PASSAGES, DRY_RUN_PASSAGES)
            c.save_steps = min(c.save_steps, 2)
            c.log_steps = 1
        if c.batch_size is None:
            c.batch_size = 16 if runtime.device_type == "cpu" else 64
        for name in ("max_steps", "batch_size", "grad_accum", "save_steps", "log_steps", "max_length"):
            if getattr(c, name) < 1:
                raise SimlmError(f"--{name.replace('_', '-')} must be at least 1")
        if c.lr <= 0:
            raise SimlmError("--lr must be positive")

    def _schedule(self, size: int, d: Dist) -> None:
        """Steps from --epochs (once the data size is known), then the default warmup (10% of the steps)."""
        c = self.config
        if c.epochs is not None:
            if c.epochs <= 0:
                raise SimlmError("--epochs must be positive")
            batches = DataOrder(size, c.batch_size, c.seed, 0, d.world).batches_per_epoch
            steps = max(1, math.ceil(c.epochs * batches / c.grad_accum))
            c.max_steps = min(c.max_steps, steps) if c.dry_run else steps
        if c.warmup_steps is None:
            c.warmup_steps = max(0, c.max_steps // 10)

    def _save_checkpoint(self, step: int, model, optimizer, scheduler, scaler, d: Dist) -> None:
        rng = capture_rng()
        gathered: list[Any] = [rng]
        if d.world > 1:
            import torch.distributed as dist

            gathered = [None] * d.world
            dist.all_gather_object(gathered, {k: v for k, v in rng.items()})
        if d.main:
            output = Path(self.config.output)
            target = output / CHECKPOINTS / f"step-{step}"
            with atomic_directory(target, marker="state.json") as tmp:
                save_state(model, tmp / "model.safetensors")
                tensors = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else {},
                    "rng": [{k: v for k, v in r.items() if k in ("torch", "cuda")} for r in gathered],
                }
                torch.save(tensors, tmp / "trainer.pt")
                state = {
                    "step": step,
                    "micro_batches": step * self.config.grad_accum,
                    "world_size": d.world,
                    "objective": self.config.objective,
                    "rng": [_rng_to_json(r) for r in gathered],
                    "config": self._config_record(),
                }
                (tmp / "state.json").write_text(json.dumps(state) + "\n", encoding="utf-8")
            for old in list_checkpoints(output)[: -self.config.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        _barrier(d)

    def _config_record(self) -> dict[str, Any]:
        return {
            k: str(v) if not isinstance(v, int | float | bool | None) else v for k, v in asdict(self.config).items()
        }

    def _check_resumed_config(self, path: Path, saved: dict[str, Any]) -> None:
        """Options that fix the data order must match the checkpoint's, or the resumed run would not continue the
        same run; other changed options (lr, steps, ...) are the user's to make, and are logged."""
        now = self._config_record()
        changed = {k: (saved[k], now[k]) for k in saved if k in now and saved[k] != now[k] and k not in _NOT_COMPARED}
        fixed = [k for k in changed if k in _FIXED_ON_RESUME]
        if fixed:
            what = ", ".join(f"--{k.replace('_', '-')} {changed[k][1]} (checkpoint: {changed[k][0]})" for k in fixed)
            raise SimlmError(f"--resume: {path} was trained with other data settings: {what}")
        if changed:
            what = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
            self.log(f"--resume: options changed since {path}: {what}")

    def _load_checkpoint(self, path: Path, model, optimizer, scheduler, scaler, d: Dist) -> int:
        """The checkpoint's step, after restoring everything it holds; a damaged checkpoint is a one-line error."""
        try:
            return self._restore(path, model, optimizer, scheduler, scaler, d)
        except SimlmError:
            raise
        except Exception as err:  # a corrupt state.json, a planted or truncated trainer.pt, bad weights, ...
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise InputError(
                path,
                f"corrupt checkpoint, cannot resume from it ({type(err).__name__}: {first}); remove it to "
                "resume from an earlier one",
            ) from None

    def _restore(self, path: Path, model, optimizer, scheduler, scaler, d: Dist) -> int:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError("state.json is not a JSON object")
        if state.get("objective") != self.config.objective:
            raise SimlmError(f"--resume: {path} is a {state.get('objective')} run, not {self.config.objective}")
        self._check_resumed_config(path, state.get("config", {}))
        load_state(model, path / "model.safetensors")
        # weights_only: a checkpoint directory may come from elsewhere; a planted pickle must not run code.
        tensors = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(tensors["optimizer"])
        scheduler.load_state_dict(tensors["scheduler"])
        if scaler is not None and tensors["scaler"]:
            scaler.load_state_dict(tensors["scaler"])
        if state.get("world_size") == d.world:
            _restore_rng(state["rng"][d.rank], tensors["rng"][d.rank])
        else:
            self.log(f"--resume: world size changed ({state.get('world_size')} -> {d.world}); RNG states reseeded")
        return int(state["step"])

    def _stop_if_not_finite(self, loss: float, step: int, d: Dist) -> None:
        """A NaN or infinite loss (a NaN teacher score, an overflow) would poison every weight at the next
        optimizer step: stop before it, so the last checkpoint stays the last good model. All ranks agree."""
        bad = torch.tensor([0.0 if math.isfinite(loss) else 1.0], dtype=torch.float64)
        if float(_sum_across(d, bad)[0]) == 0:
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
        c = self.config
        runtime = resolve_runtime(c.device, c.precision)
        d = init_distributed(runtime)
        self._settings(runtime)
        output = Path(c.output)
        check_train_output(output)
        data = self.make_data(c)
        self._schedule(len(data), d)

        random.seed(c.seed)
        np.random.seed(c.seed)
        torch.manual_seed(c.seed)
        model = self.build(self.model_path, self.tokenizer, self.log if d.main else (lambda _m: None))
        model.to(runtime.device)
        model.train()
        self.model = model
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimizer = build_optimizer(model, c.lr, c.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(c.warmup_steps, c.max_steps))
        scaler = torch.amp.GradScaler("cuda") if runtime.precision is Precision.fp16 else None

        start = 0
        checkpoints = list_checkpoints(output)
        if c.resume:
            if not checkpoints:
                raise SimlmError(f"--resume: no checkpoint under {output / CHECKPOINTS}")
            start = self._load_checkpoint(checkpoints[-1], model, optimizer, scheduler, scaler, d)
            self.log(f"resumed from {checkpoints[-1]} (step {start})")
        elif d.main and (checkpoints or (output / LOG_FILE).exists()):
            self.log(f"{output} holds an earlier run; starting afresh (pass --resume to continue it)")
            shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
            (output / LOG_FILE).unlink(missing_ok=True)
        _barrier(d)

        wrapped: torch.nn.Module = model
        if d.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [torch.device(runtime.device).index] if runtime.device_type == "cuda" else None
            wrapped = DistributedDataParallel(
                model, device_ids=device_ids, find_unused_parameters=getattr(model, "find_unused_parameters", False)
            )
        order = DataOrder(len(data), c.batch_size, c.seed, d.rank, d.world)
        if d.main:
            self.log(
                f"{c.objective}: {len(data)} {getattr(data, 'unit', 'passages')}, {trainable / 1e6:.1f}M trainable parameters, "
                f"{runtime.describe()}, {d.world} process(es) x batch {c.batch_size} x accumulation {c.grad_accum} "
                f"= {d.world * c.batch_size * c.grad_accum} {getattr(data, 'unit', 'passages')} per step, steps {start}->{c.max_steps}"
            )
        records = self._read_log(output, start) if d.main else []
        end = c.max_steps if c.stop_at_step is None else min(c.max_steps, c.stop_at_step)
        device = torch.device(runtime.device)
        window_tokens, window_time = 0.0, 0.0
        for step in range(start, end):
            began = time.perf_counter()
            sums: dict[str, float] = {}
            count = 0
            tokens = 0
            examples = 0
            ratio_sum, ratio_n = 0.0, 0
            for micro in range(c.grad_accum):
                micro_batch = step * c.grad_accum + micro
                rows = order.indices(micro_batch)
                batch = data.batch(rows, order.position(micro_batch)[0])
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                rng = torch.Generator(device=device)
                rng.manual_seed(micro_seed(c.seed, step, micro, d.rank))
                sync = micro == c.grad_accum - 1 or d.world == 1
                context = wrapped.no_sync() if not sync else _null()
                with context:
                    with runtime.autocast():
                        out = wrapped(batch, rng)
                    loss = out.loss / c.grad_accum
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                count += 1
                sums["loss"] = sums.get("loss", 0.0) + float(out.loss.detach())
                for key, value in out.parts.items():
                    sums[f"loss_{key}"] = sums.get(f"loss_{key}", 0.0) + float(value)
                if out.replace_ratio is not None:
                    ratio_sum += float(out.replace_ratio)
                    ratio_n += 1
                tokens += sum(int(v.sum()) for k, v in batch.items() if k.endswith("attention_mask"))
                examples += len(rows)
            self._stop_if_not_finite(sums["loss"], step + 1, d)
            if scaler is not None:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], c.max_grad_norm
            )
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            elapsed = time.perf_counter() - began
            window_tokens += tokens
            window_time += elapsed
            if done % c.log_steps == 0 or done == end or done == start + 1:
                keys = sorted(sums)
                vector = torch.tensor(
                    [sums[k] / count for k in keys] + [ratio_sum, ratio_n, window_tokens, examples], dtype=torch.float64
                )
                vector = _sum_across(d, vector)
                n = len(keys)
                record: dict[str, Any] = {"step": done}
                record.update({k: round(float(vector[i]) / d.world, 5) for i, k in enumerate(keys)})
                if float(vector[n + 1]) > 0:
                    record["replace_ratio"] = round(float(vector[n]) / float(vector[n + 1]), 4)
                record["lr"] = lr
                record["grad_norm"] = round(float(grad_norm), 4)
                record["tokens_per_s"] = round(float(vector[n + 2]) / max(window_time, 1e-9), 1)
                record["examples"] = int(vector[n + 3])
                window_tokens, window_time = 0.0, 0.0
                if d.main:
                    records.append(record)
                    with open(output / LOG_FILE, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record) + "\n")
                    parts = " ".join(f"{k}={record[k]:.4f}" for k in keys if k.startswith("loss"))
                    extra = f" replaced={record['replace_ratio']:.3f}" if "replace_ratio" in record else ""
                    self.log(f"step {done}/{c.max_steps} {parts}{extra} lr={lr:.2e} {record['tokens_per_s']:.0f} tok/s")
            if done % c.save_steps == 0 or done == c.max_steps:
                self._save_checkpoint(done, model, optimizer, scheduler, scaler, d)
        if d.main and end == c.max_steps:
            self._write_output(model, output, records)
        _barrier(d)
        if d.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
        return output

    @staticmethod
    def _read_log(output: Path, upto: int) -> list[dict[str, Any]]:
        """The records of the steps already done (a resumed run drops those after its checkpoint)."""
        path = output / LOG_FILE
        output.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch()  # marks the directory as a training run's from the start (`check_train_output`)
            return []
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        records = [r for r in records if r.get("step", 0) <= upto]
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return records

    def _write_output(self, model: torch.nn.Module, output: Path, records: list[dict[str, Any]]) -> None:
        """Whatever the model saves (HF files, extra parts) and the loss plot, each entry moved in whole."""
        written = []
        with tempfile.TemporaryDirectory(prefix=".final.", dir=output) as tmp_name:
            tmp = Path(tmp_name)
            model.save_pretrained(tmp)
            plot_losses(records, tmp / PLOT_FILE)
            write_training_card(
                tmp, self.config, records, name=self.config.output
            )  # README.md, after any the model saved
            for entry in sorted(tmp.iterdir()):
                written.append(entry.name + "/" if entry.is_dir() else entry.name)
                target = output / entry.name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(entry, target)
        if (output / LOG_FILE).exists():  # appended step by step, not in the temporary directory
            written.append(LOG_FILE)
        self.log(f"wrote {output}: {', '.join(written)}")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def plot_losses(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    keys = sorted({k for r in records for k in r if k.startswith("loss")})
    for key in keys:
        points = [(r["step"], r[key]) for r in records if key in r and math.isfinite(r[key])]
        if points:
            ax.plot(*zip(*points), label=key, marker="." if len(points) < 20 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if keys:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
