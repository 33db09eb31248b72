"""Inference backends: what runs the forward pass of `simlm encode`, `search` (queries), `mine --index` and
`rerank run`/`score`. Training always runs on PyTorch.

The runtime names the backend (`Runtime.backend`, from `--backend auto|torch|openvino`; see `device.resolve_runtime`)
and each backend is one module here with one function,

    load(model, head, runtime, load_torch, log) -> model

where `model` is a local directory or hub name, `head` is "encoder" (the model's `last_hidden_state`) or
"classifier" (its `logits`), and `load_torch(path, **from_pretrained_kwargs)` gives the Hugging Face module in
float32 on the CPU (what the PyTorch backend runs and the others convert). The model returned is called like the
Hugging Face one (keyword tensors in, an object with `last_hidden_state` or `logits` out), so `biencoder.embed` (with
its pooling) and `cross_encoder.pair_logits` serve every backend alike. A new backend is a new module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from simlm_cli.device import Runtime

HEADS = {"encoder": "last_hidden_state", "classifier": "logits"}


def load_model(
    model: str, head: str, runtime: Runtime, load_torch: Callable[..., Any], log: Callable[[str], None] | None = None
) -> Any:
    """`model` ready for inference on `runtime`'s backend (see the module's docstring)."""
    backend = importlib.import_module(f"{__name__}.{runtime.backend.value}")
    return backend.load(model, head, runtime, load_torch, log)
