"""Checkpoints stored in fp16 or bf16 (issue 23, item 1): simlm loads their weights as float32 and computes at the
precision asked for, never at the checkpoint's by accident.

transformers 5 loads a checkpoint in its stored dtype by default: `encode --precision fp32` of an fp16 checkpoint
then computed in fp16 and `--precision bf16` crashed on the CPU (`mixed dtype`). The training commands' side is in
tests/training/test_half_precision.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from simlm_cli.device import Precision, resolve_runtime
from simlm_cli.io.corpus import Passage
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.cross_encoder import load_sequence_classifier
from simlm_cli.models.loading import load_pretrained
from simlm_cli.models.settings import resolve_settings
from tests.conftest import PASSAGES, QUERIES, run_cli, write_jsonl

CPU_FP32 = resolve_runtime("cpu", Precision.fp32)
# The fp16 copy's weights are the fp32 ones rounded to 11 significant bits (relative error <= 2^-11 = 4.9e-4); through
# the tiny BERT's 2 layers that moved its L2-normalised vectors by at most 5.5e-4 per component (measured); bf16
# keeps 8 bits (<= 2^-8 = 3.9e-3), 8x coarser: 6.8e-3 measured. The tolerances are ~4x what was measured. Before the
# fix the fp16 copy computed in fp16 at `--precision fp32`; the vectors are compared with the weights' rounding as
# the only difference allowed (`test_weights_load_as_the_float32_upcast_of_the_checkpoint` checks the weights).
VECTOR_ATOL = {"float16": 2e-3, "bfloat16": 2.5e-2}


def _dtype_name(directory: Path) -> str:
    return str(next(iter(load_file(str(directory / "model.safetensors")).values())).dtype).removeprefix("torch.")


def _passages() -> list[Passage]:
    return [Passage(pid, title, text, i) for i, (pid, title, text) in enumerate(PASSAGES)]


def test_the_copies_really_are_half_precision(tiny_bert_half_dir):
    """The fixture is what the hub has: half-precision tensors, and a config whose dtype transformers 5 obeys."""
    from transformers import AutoModel

    stored = _dtype_name(tiny_bert_half_dir)
    assert stored in ("float16", "bfloat16")
    assert next(AutoModel.from_pretrained(tiny_bert_half_dir).parameters()).dtype == getattr(torch, stored)


def test_weights_load_as_the_float32_upcast_of_the_checkpoint(tiny_bert_half_dir):
    """Every parameter float32 and equal to the stored half value (upcasting is exact): the base model and a
    cross-encoder built on it alike."""
    stored = load_file(str(tiny_bert_half_dir / "model.safetensors"))
    model = load_pretrained(str(tiny_bert_half_dir))
    params = dict(model.named_parameters())
    assert {p.dtype for p in params.values()} == {torch.float32}
    assert model.config.dtype == torch.float32  # so a model simlm saves from it says float32 too
    checked = 0
    for name, tensor in stored.items():
        if name in params:
            assert torch.equal(params[name].detach(), tensor.float()), name
            checked += 1
    assert checked > 10
    classifier = load_sequence_classifier(str(tiny_bert_half_dir), log=lambda _m: None)
    assert {p.dtype for p in classifier.parameters()} == {torch.float32}


def test_encode_fp32_of_a_half_checkpoint_computes_in_float32(tiny_bert_dir, tiny_bert_half_dir):
    """The half copy's vectors at fp32 are the fp32 copy's within the weights' rounding."""
    dtype = _dtype_name(tiny_bert_half_dir)
    full = BiEncoder.load(resolve_settings(str(tiny_bert_dir)), CPU_FP32)
    half = BiEncoder.load(resolve_settings(str(tiny_bert_half_dir)), CPU_FP32)
    assert {p.dtype for p in half.encoder.parameters()} == {torch.float32}
    expected, got = full.encode_passages(_passages()), half.encode_passages(_passages())
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=VECTOR_ATOL[dtype], rtol=0)
    queries = [text for _, text in QUERIES]
    np.testing.assert_allclose(
        half.encode_queries(queries), full.encode_queries(queries), atol=VECTOR_ATOL[dtype], rtol=0
    )


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bf16 on this CPU needs oneDNN")
def test_encode_bf16_on_the_cpu_of_a_half_checkpoint(tiny_bert_dir, tiny_bert_half_dir, tmp_path):
    """`simlm encode --precision bf16` of an fp16 checkpoint crashed on the CPU (`mixed dtype`); now bf16 autocast
    runs over float32 weights and the vectors stay close to fp32's (bf16 activations: cosine, not equality)."""
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"_id": i, "title": t, "text": x} for i, t, x in PASSAGES])
    out = tmp_path / "emb"
    done = run_cli(["encode", "--model", tiny_bert_half_dir, "--corpus", corpus, "--output", out, "--device", "cpu",
                    "--precision", "bf16"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    from simlm_cli.io.embeddings import EmbeddingReader

    with open(out, "rb") as handle:
        got = np.concatenate([vectors for _, vectors in EmbeddingReader(handle, str(out))])
    expected = BiEncoder.load(resolve_settings(str(tiny_bert_dir)), CPU_FP32).encode_passages(_passages())
    assert np.isfinite(got).all()
    assert np.min(np.sum(got * expected, axis=1)) > 0.99
