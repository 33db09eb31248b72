"""torchrun set-up for the trainer: the process group, collectives that are no-ops in one process, DDP wrapping."""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from simlm_cli.device import Runtime


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


def barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def sum_across(d: Dist, values: torch.Tensor) -> torch.Tensor:
    if d.world > 1:
        import torch.distributed as dist

        values = values.clone()
        dist.all_reduce(values)
    return values


def gather_objects(d: Dist, value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (picklable objects, e.g. RNG states)."""
    if d.world == 1:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * d.world
    dist.all_gather_object(gathered, value)
    return gathered


def wrap_model(model: torch.nn.Module, runtime: Runtime, d: Dist) -> torch.nn.Module:
    """The model as the step loop calls it: DDP-wrapped under torchrun (gradients averaged across ranks)."""
    if d.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.device(runtime.device).index] if runtime.device_type == "cuda" else None
    return DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=getattr(model, "find_unused_parameters", False)
    )


def accumulating(wrapped: torch.nn.Module, sync: bool) -> AbstractContextManager:
    """DDP's `no_sync` on the micro-steps before the last of an optimizer step: gradients are all-reduced once."""
    return contextlib.nullcontext() if sync else wrapped.no_sync()


def finish(d: Dist) -> None:
    """End the process group this run started (one torchrun started is the caller's)."""
    if d.owned:
        import torch.distributed as dist

        dist.destroy_process_group()
