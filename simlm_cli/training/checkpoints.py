"""Checkpoints and exact resumption.

A checkpoint (`checkpoints/step-N/`) holds the model, optimizer, scheduler, grad scaler and every RNG state
(python, numpy, torch, CUDA) of every rank; with the data order a pure function of (seed, epoch) and each
micro-step's generator seeded from (seed, step, micro, rank), a resumed run continues exactly.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlm_cli.errors import InputError, SimlmError, first_line
from simlm_cli.io.files import atomic_directory, model_write
from simlm_cli.io.json_input import read_json
from simlm_cli.run_config import RUN_CONFIG_FILE, write_run_config
from simlm_cli.training.distributed import Dist, barrier, gather_objects
from simlm_cli.training.run_dir import CHECKPOINTS, claim_output, record_written

# Resuming with another value of these would not continue the same run (another data order or batch).
_FIXED_ON_RESUME = (
    "batch_size", "grad_accum", "seed", "corpus", "max_length", "max_passages", "objective_options", "train_only",
)  # fmt: skip
_NOT_COMPARED = (
    "resume",
    "overwrite",
    "stop_at_step",
    "output",
)  # differ between the first run and its resumption by design


@dataclass
class TrainState:
    """What a checkpoint saves and restores besides the RNG states."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any = None  # torch.amp.GradScaler under fp16


def list_checkpoints(output: Path) -> list[Path]:
    root = output / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


# -- weights ------------------------------------------------------------------------------------------------------
def state_without_ties(module: torch.nn.Module, skip_prefix: str | None = None) -> dict[str, torch.Tensor]:
    """A state dict safetensors accepts: tied tensors kept once (loading one fills the other)."""
    seen: set[tuple[int, int, tuple]] = set()
    out = {}
    for key, value in module.state_dict().items():
        if skip_prefix and key.startswith(skip_prefix):
            continue
        ident = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if ident in seen:
            continue
        seen.add(ident)
        out[key] = value.detach().cpu().contiguous()
    return out


def save_state(module: torch.nn.Module, path: Path, skip_prefix: str | None = None) -> None:
    from safetensors.torch import save_file

    save_file(state_without_ties(module, skip_prefix), str(path))


def load_state(module: torch.nn.Module, path: Path, only_prefix_absent: str | None = None) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    expected = state_without_ties(module, only_prefix_absent)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise SimlmError(f"{path}: does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    module.load_state_dict(state, strict=False)


# -- RNG state ----------------------------------------------------------------------------------------------------
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


# -- saving and restoring ---------------------------------------------------------------------------------------------
def config_record(config: Any) -> dict[str, Any]:
    """The run's configuration (a dataclass) as JSON values, as saved in each checkpoint (the command's options,
    `run_config`, lie in OUTPUT/simlm-config.json instead)."""
    values = {k: v for k, v in asdict(config).items() if k != "run_config"}
    return {k: str(v) if not isinstance(v, int | float | bool | None) else v for k, v in values.items()}


def save_checkpoint(config: Any, step: int, state: TrainState, d: Dist) -> None:
    """`checkpoints/step-N` (written whole or not at all), keeping the newest `config.save_total_limit`."""
    gathered = gather_objects(d, capture_rng())
    if d.main:
        output = Path(config.output)
        target = output / CHECKPOINTS / f"step-{step}"
        with atomic_directory(target, marker="state.json") as tmp, model_write(target, "the checkpoint"):
            save_state(state.model, tmp / "model.safetensors")
            tensors = {
                "optimizer": state.optimizer.state_dict(),
                "scheduler": state.scheduler.state_dict(),
                "scaler": state.scaler.state_dict() if state.scaler is not None else {},
                "rng": [{k: v for k, v in r.items() if k in ("torch", "cuda")} for r in gathered],
            }
            torch.save(tensors, tmp / "trainer.pt")
            saved = {
                "step": step,
                "micro_batches": step * config.grad_accum,
                "world_size": d.world,
                "objective": config.objective,
                "rng": [_rng_to_json(r) for r in gathered],
                "config": config_record(config),
            }
            (tmp / "state.json").write_text(json.dumps(saved) + "\n", encoding="utf-8")
        for old in list_checkpoints(output)[: -config.save_total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    barrier(d)


def load_checkpoint(path: Path, config: Any, state: TrainState, d: Dist, log: Callable[[str], None]) -> int:
    """The checkpoint's step, after restoring everything it holds; a damaged checkpoint is a one-line error."""
    try:
        return _restore(path, config, state, d, log)
    except SimlmError:
        raise
    except Exception as err:  # a corrupt state.json, a planted or truncated trainer.pt, bad weights, ...
        raise InputError(
            path,
            f"corrupt checkpoint, cannot resume from it ({type(err).__name__}: {first_line(err)[:200]}); remove it "
            "to resume from an earlier one",
        ) from None


def _check_resumed_config(path: Path, config: Any, saved: dict[str, Any], log: Callable[[str], None]) -> None:
    """Options that fix the data order must match the checkpoint's, or the resumed run would not continue the
    same run; other changed options (lr, steps, ...) are the user's to make, and are logged."""
    now = config_record(config)
    changed = {k: (saved[k], now[k]) for k in saved if k in now and saved[k] != now[k] and k not in _NOT_COMPARED}
    fixed = [k for k in changed if k in _FIXED_ON_RESUME]
    if fixed:
        what = ", ".join(f"--{k.replace('_', '-')} {changed[k][1]} (checkpoint: {changed[k][0]})" for k in fixed)
        raise SimlmError(f"--resume: {path} was trained with other data settings: {what}")
    if changed:
        what = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
        log(f"--resume: options changed since {path}: {what}")


def _restore(path: Path, config: Any, state: TrainState, d: Dist, log: Callable[[str], None]) -> int:
    saved = read_json(path / "state.json")
    if not isinstance(saved, dict):
        raise ValueError("state.json is not a JSON object")
    step = saved.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:  # -7 would fail deep in the trainer
        raise ValueError(f"state.json: field 'step': expected an integer >= 0, got {step!r}")
    if saved.get("objective") != config.objective:
        raise SimlmError(f"--resume: {path} is a {saved.get('objective')} run, not {config.objective}")
    _check_resumed_config(path, config, saved.get("config", {}), log)
    load_state(state.model, path / "model.safetensors")
    # weights_only: a checkpoint directory may come from elsewhere; a planted pickle must not run code.
    tensors = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    state.optimizer.load_state_dict(tensors["optimizer"])
    state.scheduler.load_state_dict(tensors["scheduler"])
    if state.scaler is not None and tensors["scaler"]:
        state.scaler.load_state_dict(tensors["scaler"])
    if saved.get("world_size") == d.world:
        _restore_rng(saved["rng"][d.rank], tensors["rng"][d.rank])
    else:
        log(f"--resume: world size changed ({saved.get('world_size')} -> {d.world}); RNG states reseeded")
    return step


def start_step(config: Any, state: TrainState, d: Dist, log: Callable[[str], None]) -> int:
    """Where the run starts: the newest checkpoint's step under --resume (restored), else 0. The main process then
    marks the directory as this run's, an earlier run's entries removed unless resumed (`claim_output`; the
    command refused a non-empty output without --resume or --overwrite); the others wait."""
    output = Path(config.output)
    start = 0
    if config.resume:
        checkpoints = list_checkpoints(output)
        if not checkpoints:
            raise SimlmError(f"--resume: no checkpoint under {output / CHECKPOINTS}")
        start = load_checkpoint(checkpoints[-1], config, state, d, log)
        log(f"resumed from {checkpoints[-1]} (step {start})")
    if d.main:
        claim_output(output, config.resume, log)
        if config.run_config is not None:  # how this run was asked for, so that it can be repeated
            record_written(output, [RUN_CONFIG_FILE])
            write_run_config(output, config.run_config)
    barrier(d)
    return start
