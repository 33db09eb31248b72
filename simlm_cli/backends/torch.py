"""The PyTorch backend: the Hugging Face module itself on `--device`, bf16/fp16 through autocast
(`Runtime.autocast`). The only backend on CUDA and for training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simlm_cli.device import Runtime


def load(
    model: str, head: str, runtime: Runtime, load_torch: Callable[..., Any], log: Callable[[str], None] | None = None
) -> Any:
    return load_torch(model).to(runtime.device).eval()
