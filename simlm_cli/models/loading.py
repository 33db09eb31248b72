"""The one way simlm loads Hugging Face tokenizers and weights: quietly, safetensors only, in float32, errors on
one line.

Every model class (the bi-encoder, the cross-encoder, the pretraining objectives' masked LMs) loads through
`load_pretrained`; a `.bin` is a pickle, and a model directory may come from anywhere (only torch's
`weights_only` default would stop a planted one).

Weights are always float32, whatever dtype the checkpoint stores them in. transformers 5 loads a checkpoint in its
stored dtype by default (`dtype="auto"`), and many hub checkpoints are fp16 or bf16: training would then step
AdamW on half-precision weights (NaN after a step or two), fp16 gradients cannot be unscaled, bf16 autocast
refuses fp16 weights on the CPU, and `--precision fp32` would silently compute in fp16. float32 weights are the
master weights training needs; bf16/fp16 then come from autocast (`Runtime.autocast`), as asked, at inference too.
Models simlm saves are therefore float32 as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simlm_cli.errors import SimlmError, first_line
from simlm_cli.models.settings import resolve_model_path


def quiet_transformers() -> None:
    """Keep transformers' own progress bars and notices off stderr; simlm reports what it loads."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    quiet_transformers()
    path = resolve_model_path(model)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise SimlmError(f"cannot load a tokenizer for {model!r}: {first_line(err)}") from None


def load_pretrained(model: str, auto_class: Any = None, role: str = "", **kwargs: Any) -> Any:
    """`auto_class.from_pretrained` (AutoModel by default) from safetensors weights, as float32 whatever the
    checkpoint's dtype; `role` (" as a masked LM") completes the error message. Extra keyword arguments go to
    `from_pretrained`."""
    import torch
    from transformers import AutoModel

    quiet_transformers()
    path = resolve_model_path(model)
    try:
        return (auto_class or AutoModel).from_pretrained(path, use_safetensors=True, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as err:
        hint = ""
        if Path(path).is_dir() and not any(Path(path).glob("*.safetensors")):
            hint = " (simlm loads safetensors weights only; save the model with `save_pretrained(dir)` to get them)"
        raise SimlmError(f"cannot load {model!r}{role} (safetensors only): {first_line(err)}{hint}") from None
