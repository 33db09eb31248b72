"""The one loader of Hugging Face weights (simlm_cli/models/loading.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simlm_cli.errors import SimlmError


def test_load_pretrained_takes_safetensors_only(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """A `.bin` is a pickle: a user-given directory holding only one is refused, and nothing in it runs (issue 10,
    item 13). Every model class loads through this one loader."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from simlm_cli.models.loading import load_pretrained

    model = tmp_path / "bin-only"
    shutil.copytree(tiny_bert_dir, model)
    weights = load_file(str(model / "model.safetensors"))
    (model / "model.safetensors").unlink()
    torch.save(weights, model / "pytorch_model.bin")
    with pytest.raises(SimlmError, match="safetensors weights only"):
        load_pretrained(str(model))
    assert load_pretrained(str(tiny_bert_dir)) is not None
