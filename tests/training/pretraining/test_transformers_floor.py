"""The pretraining objectives on both transformers lines: 5.x (masking_utils) and 4.x (pip's pick beside optimum).

The floor check runs this directory's objective tests in a subprocess against a transformers 4.x tree named by
SIMLM_TRANSFORMERS4 (skipped without it). Such a tree, installed beside the venv without touching it::

    pip install --no-deps --target /tmp/tf4 "transformers==4.57.*" "huggingface-hub>=0.34,<1.0" \
        "tokenizers>=0.22,<=0.23.0"
    SIMLM_TRANSFORMERS4=/tmp/tf4 pytest tests/training/pretraining/test_transformers_floor.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simlm_cli.training.pretraining import objective as objective_module

from .conftest import make_objective, toy_sentence

ROOT = Path(__file__).resolve().parents[3]


def _batch(tokenizer):
    import random

    from .conftest import batch_of

    rng = random.Random(1)
    return batch_of(tokenizer, [toy_sentence(rng) for _ in range(6)])


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_decoder_mask_matches_the_models_own_forward_on_either_line(attention, tiny_model, tokenizer, monkeypatch):
    """`run_stack` over the encoder's own layers gives the encoder's output, with the transformers 5 mask and with
    the additive mask built for 4.x (forced here by hiding masking_utils)."""
    from transformers import AutoModelForMaskedLM

    obj = make_objective("mlm", tiny_model, tokenizer)
    # 4.x picks the attention classes when the model is built: load it with the implementation asked for.
    obj.mlm = AutoModelForMaskedLM.from_pretrained(tiny_model, attn_implementation=attention)
    obj.eval()
    assert obj.encoder.config._attn_implementation == attention
    batch = _batch(tokenizer)
    ids, am = batch["input_ids"], batch["attention_mask"]
    assert not am.all()  # some padding, so the mask matters
    with torch.no_grad():
        reference = obj.encode(ids, am).last_hidden_state
        embedded = obj.encoder.embeddings(input_ids=ids)
        layers = obj.encoder.encoder.layer
        native = obj.run_stack(layers, embedded, am)
        monkeypatch.setitem(sys.modules, "transformers.masking_utils", None)  # import -> ImportError
        fallback = obj.run_stack(layers, embedded, am)
    real = am.bool()
    assert torch.allclose(native[real], reference[real], atol=1e-5)
    assert torch.allclose(fallback[real], reference[real], atol=1e-5)


def test_pyproject_floor_is_the_tested_transformers_line():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    floor = re.search(r'"transformers>=([0-9.]+)"', text)
    assert floor and tuple(int(x) for x in floor.group(1).split(".")) >= (4, 57)
    assert objective_module.bidirectional_mask  # the one place the two lines differ for the objectives


@pytest.mark.skipif(not os.environ.get("SIMLM_TRANSFORMERS4"), reason="SIMLM_TRANSFORMERS4 (a 4.x tree) not set")
def test_objectives_at_the_transformers_4_floor():
    tree = os.environ["SIMLM_TRANSFORMERS4"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, str(ROOT), str(ROOT / "plugins")]))
    version = subprocess.run(
        [sys.executable, "-c", "import transformers; print(transformers.__version__)"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert version.startswith("4."), version
    tests = ["tests/training/pretraining/test_objectives.py", "tests/training/pretraining/test_transformers_floor.py"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-k", "not at_the_transformers_4"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
