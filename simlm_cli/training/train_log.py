"""The training log: per-step loss sums, their reduction across ranks into `train_log.jsonl` records and log
lines, and the loss plot (`loss.png`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlm_cli.io.json_input import loads
from simlm_cli.training.distributed import Dist, sum_across
from simlm_cli.training.step import StepOutput

LOG_FILE = "train_log.jsonl"
PLOT_FILE = "loss.png"


@dataclass
class StepSums:
    """One optimizer step's micro-step outputs, summed."""

    losses: dict[str, float] = field(default_factory=dict)  # "loss", "loss_<part>"
    count: int = 0
    ratio_sum: float = 0.0
    ratio_n: int = 0
    tokens: int = 0
    examples: int = 0

    def add(self, out: StepOutput, batch: dict[str, Any], rows: np.ndarray) -> None:
        self.count += 1
        self.losses["loss"] = self.losses.get("loss", 0.0) + float(out.loss.detach())
        for key, value in out.parts.items():
            self.losses[f"loss_{key}"] = self.losses.get(f"loss_{key}", 0.0) + float(value)
        if out.replace_ratio is not None:
            self.ratio_sum += float(out.replace_ratio)
            self.ratio_n += 1
        self.tokens += sum(int(v.sum()) for k, v in batch.items() if k.endswith("attention_mask"))
        self.examples += len(rows)


@dataclass
class Window:
    """Tokens and seconds since the last logged step, for tokens/s."""

    tokens: float = 0.0
    seconds: float = 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds


def reduce_record(
    step: int, sums: StepSums, window: Window, lr: float, grad_norm: torch.Tensor, d: Dist
) -> dict[str, Any]:
    """A log record of the step: mean losses over micro-steps and ranks, lr, grad norm, tokens/s, examples."""
    keys = sorted(sums.losses)
    vector = torch.tensor(
        [sums.losses[k] / sums.count for k in keys] + [sums.ratio_sum, sums.ratio_n, window.tokens, sums.examples],
        dtype=torch.float64,
    )
    vector = sum_across(d, vector)
    n = len(keys)
    record: dict[str, Any] = {"step": step}
    record.update({k: round(float(vector[i]) / d.world, 5) for i, k in enumerate(keys)})
    if float(vector[n + 1]) > 0:
        record["replace_ratio"] = round(float(vector[n]) / float(vector[n + 1]), 4)
    record["lr"] = lr
    record["grad_norm"] = round(float(grad_norm), 4)
    record["tokens_per_s"] = round(float(vector[n + 2]) / max(window.seconds, 1e-9), 1)
    record["examples"] = int(vector[n + 3])
    return record


def log_line(record: dict[str, Any], max_steps: int) -> str:
    parts = " ".join(f"{k}={v:.4f}" for k, v in sorted(record.items()) if k.startswith("loss"))
    extra = f" replaced={record['replace_ratio']:.3f}" if "replace_ratio" in record else ""
    return f"step {record['step']}/{max_steps} {parts}{extra} lr={record['lr']:.2e} {record['tokens_per_s']:.0f} tok/s"


def read_log(output: Path, upto: int) -> list[dict[str, Any]]:
    """The records of the steps already done (a resumed run drops those after its checkpoint)."""
    path = output / LOG_FILE
    output.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch()
        return []
    lines = enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
    records = [loads(text, path, lineno) for lineno, text in lines if text.strip()]
    records = [r for r in records if r.get("step", 0) <= upto]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def append_record(output: Path, record: dict[str, Any]) -> None:
    with open(output / LOG_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


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
