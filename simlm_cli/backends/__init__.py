"""Inference backends: what runs the forward pass of `simlm encode`, `search` (queries), `mine --index` and
`rerank run`/`score`. Training always runs on PyTorch.

The runtime names the backend (`Runtime.backend`, from `--backend auto|torch|openvino`; see `device.resolve_runtime`)
and each backend is one module here with one function,

    load(model, head, runtime, load_torch, log) -> model

where `model` is a local directory or hub name, `head` is "encoder" (the model's `last_hidden_state`) or
"classifier" (its `logits`), and `load_torch(path, **from_pretrained_kwargs)` gives the Hugging Face module in
float32 on the CPU (what the PyTorch backend runs and the others convert). The model returned is called like the
Hugging Face one (keyword tensors in, an object with `last_hidden_state` or `logits` out), so `biencoder.embed` (with
its pooling) and `cross_encoder.pair_logits` serve every backend alike.

A new backend is a new module here and one line in `BACKENDS` saying what it runs: `--backend NAME` then exists,
and `simlm_cli.device` checks a runtime against these lines and picks `auto`'s backend from them (the lowest `auto_rank`
that runs the device and precision). This module stays light (no numpy or torch): the CLI reads it at start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simlm_cli.device import Runtime

HEADS = {"encoder": "last_hidden_state", "classifier": "logits"}


@dataclass(frozen=True)
class BackendSpec:
    """What a backend runs: `--backend name` on these device types, at these runtime precisions."""

    name: str  # its module here, and its --backend value
    label: str  # for messages
    devices: tuple[str, ...]  # device types: "cpu", "cuda"
    precisions: tuple[str, ...]  # `Precision` values
    autocast: bool = False  # bf16/fp16 run through torch.autocast (else the precision is compiled into the model)
    auto_rank: int = 0  # `--backend auto` takes the lowest-ranked backend that runs the device and precision

    def runs(self, device_type: str, precision: str) -> bool:
        return device_type in self.devices and precision in self.precisions


# The registry. `auto`: on the CPU OpenVINO runs fp32 and bf16 faster than PyTorch for the same vectors (README "CPU
# backends") and int8 only there; on CUDA PyTorch.
BACKENDS = (
    BackendSpec("torch", "PyTorch", ("cpu", "cuda"), ("fp32", "bf16", "fp16"), autocast=True, auto_rank=1),
    BackendSpec("openvino", "OpenVINO", ("cpu",), ("fp32", "bf16", "int8")),
)
SPECS = {spec.name: spec for spec in BACKENDS}


def load_model(
    model: str, head: str, runtime: Runtime, load_torch: Callable[..., Any], log: Callable[[str], None] | None = None
) -> Any:
    """`model` ready for inference on `runtime`'s backend (see the module's docstring)."""
    backend = importlib.import_module(f"{__name__}.{runtime.backend.value}")
    return backend.load(model, head, runtime, load_torch, log)
