"""The OpenVINO float backend (`--backend openvino`, auto's choice on the CPU): its vectors and scores against
PyTorch fp32, the check that refuses a graph before use, the runtime that names it, and one loader for every
backend (`simlm_cli.backends.load_model`)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from simlm_cli import device
from simlm_cli.backends import openvino
from simlm_cli.device import Backend, Precision, Runtime, TrainingPrecision, resolve_runtime
from simlm_cli.errors import SimlmError
from simlm_cli.io.corpus import Passage
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.cross_encoder import CrossEncoder
from simlm_cli.models.settings import resolve_settings
from tests.conftest import PASSAGES, QUERIES

TORCH_FP32 = Runtime("cpu", Precision.fp32)
OPENVINO = {p: Runtime("cpu", p, Backend.openvino) for p in (Precision.fp32, Precision.bf16)}
MIN_COSINE = {Precision.fp32: 0.9999, Precision.bf16: 0.999}  # the bars, per vector


def passages() -> list[Passage]:
    return [Passage(docid, title, text, line) for line, (docid, title, text) in enumerate(PASSAGES, 1)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def cached(cache: Path) -> list[Path]:
    return sorted((cache / "openvino").glob("*/" + openvino.MODEL_FILE))


@pytest.mark.parametrize("precision", list(OPENVINO), ids=lambda p: p.value)
@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_st_dir"])  # cls pooling; mean pooling
def test_openvino_vectors_match_pytorch_fp32(model: str, precision: Precision, request) -> None:
    settings = resolve_settings(str(request.getfixturevalue(model)))
    reference = BiEncoder.load(settings, TORCH_FP32)
    encoder = BiEncoder.load(settings, OPENVINO[precision])
    assert isinstance(encoder.encoder, openvino.OvModel) and not isinstance(reference.encoder, openvino.OvModel)
    for encode in ("encode_passages", "encode_queries"):
        inputs = passages() if encode == "encode_passages" else [q for _, q in QUERIES]
        got, expected = getattr(encoder, encode)(inputs), getattr(reference, encode)(inputs)
        assert got.shape == expected.shape and got.dtype == np.float32
        assert cosines(got, expected).min() >= MIN_COSINE[precision], cosines(got, expected)
        assert not np.array_equal(got, expected)  # OpenVINO did run, not PyTorch


@pytest.mark.parametrize("precision", list(OPENVINO), ids=lambda p: p.value)
def test_openvino_reranker_scores_match_pytorch_fp32(tiny_reranker_dir: Path, precision: Precision) -> None:
    """fp32: logits within 1e-4 of max(1, |logit|); bf16: no further from fp32 than PyTorch's own bf16 (twice its
    largest error at most: a logit has no cosine, and bf16 keeps 8 significant bits)."""
    queries = [q for _, q in QUERIES for _ in PASSAGES]
    texts = [f"{title} {text}".strip() for _ in QUERIES for _, title, text in PASSAGES]

    def scores(runtime: Runtime) -> np.ndarray:
        return CrossEncoder.load(str(tiny_reranker_dir), runtime, batch_size=8).score(queries, texts)

    def error(got: np.ndarray) -> float:
        return float((np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)).max())

    expected = scores(TORCH_FP32)
    reranker = CrossEncoder.load(str(tiny_reranker_dir), OPENVINO[precision], batch_size=8)
    assert isinstance(reranker.model, openvino.OvModel)
    got = reranker.score(queries, texts)
    if precision is Precision.fp32:
        assert error(got) <= 1e-4, error(got)
    else:
        torch_bf16 = error(scores(Runtime("cpu", Precision.bf16)))
        print(f"largest logit error: OpenVINO bf16 {error(got):.2e}, PyTorch bf16 {torch_bf16:.2e}")
        assert error(got) <= 2 * torch_bf16, (error(got), torch_bf16)


def test_a_graph_below_the_cosine_bar_is_refused_and_not_cached(tiny_bert_dir: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIMLM_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(openvino.MIN_COSINE, "bf16", 1.0 + 1e-9)  # no graph can pass: the check must refuse
    with pytest.raises(
        SimlmError,
        match=r"--backend openvino: the OpenVINO bf16 graph of .* reaches cosine 0\.\d+ to PyTorch fp32 \(< 1",
    ):
        BiEncoder.load(resolve_settings(str(tiny_bert_dir)), OPENVINO[Precision.bf16])
    assert not cached(tmp_path) and not list((tmp_path / "openvino").iterdir())  # nothing half-made was left


def test_a_bf16_reranker_may_be_as_far_as_twice_pytorchs_own_bf16(tiny_reranker_dir: Path) -> None:
    """A trained re-ranker's bf16 logits move more than a fixed bar on the largest of a few pairs allows
    (recipes/scifact.sh stopped on two): at bf16 the mean error over 16 pairs is held to the larger of 5e-2 and twice
    PyTorch's own bf16 autocast mean error on the same batch, computed here independently; fp32 keeps its fixed bar
    on the largest error."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_reranker_dir, attn_implementation="eager").eval()
    names = openvino.input_names(model)
    lengths = tuple(range(4, 68, 4))
    batch = openvino.sample_inputs(model.config, names, lengths)
    sample = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.inference_mode():
        fp32 = model(**sample).logits.double().numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(**sample).logits.double().numpy()
    assert fp32.shape == (16, 1)
    torch_error = float((np.abs(bf16 - fp32) / np.maximum(np.abs(fp32), 1.0)).mean())
    bar, measured = openvino.classifier_bar(model, batch, "bf16", fp32)
    assert measured == {"pytorch_bf16_mean_logit_error": pytest.approx(torch_error, rel=1e-6)}
    assert bar == pytest.approx(max(0.05, 2 * torch_error), rel=1e-6)
    assert openvino.classifier_bar(model, batch, "f32", fp32) == (1e-3, {})


def test_a_bf16_reranker_graph_worse_than_its_bar_is_refused(tiny_reranker_dir: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIMLM_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(openvino.CLASSIFIER_TOLERANCE, "bf16", 0.0)
    monkeypatch.setattr(openvino, "BF16_AGAINST_PYTORCH_BF16", 1e-9)  # only an exact graph could pass
    with pytest.raises(
        SimlmError, match=r"logits differ from PyTorch fp32's by a mean of .* \(> .*, twice PyTorch bf16's "
    ):
        CrossEncoder.load(str(tiny_reranker_dir), OPENVINO[Precision.bf16], batch_size=8)
    assert not cached(tmp_path)


def test_fp32_and_bf16_are_cached_apart_and_reused(tiny_bert_dir: Path, tmp_path, monkeypatch) -> None:
    import json

    monkeypatch.setenv("SIMLM_CACHE_DIR", str(tmp_path))
    settings = resolve_settings(str(tiny_bert_dir))
    first = {
        p: BiEncoder.load(settings, runtime).encode_queries(["how do proteins fold"]) for p, runtime in OPENVINO.items()
    }
    entries = cached(tmp_path)
    assert len(entries) == 2
    records = [json.loads((path.parent / "openvino.json").read_text()) for path in entries]
    assert sorted(r["inference_precision"] for r in records) == ["bf16", "f32"]
    assert all(r["min_cosine"] >= openvino.MIN_COSINE[r["inference_precision"]] for r in records)

    def no_build(*args, **kwargs):
        raise AssertionError("the cached model was converted again")

    monkeypatch.setattr(openvino, "build", no_build)
    for precision, runtime in OPENVINO.items():
        np.testing.assert_array_equal(
            BiEncoder.load(settings, runtime).encode_queries(["how do proteins fold"]), first[precision]
        )


def test_converting_writes_nothing_to_stdout(tiny_st_dir: Path, tmp_path: Path, monkeypatch, capfd) -> None:
    """`simlm encode` writes its embedding stream to stdout: the converter's output must not land there."""
    monkeypatch.setenv("SIMLM_CACHE_DIR", str(tmp_path))  # a cache miss: the conversion runs
    BiEncoder.load(resolve_settings(str(tiny_st_dir)), OPENVINO[Precision.fp32]).encode_queries(
        ["how do proteins fold"]
    )
    out, err = capfd.readouterr()
    assert cached(tmp_path) and out == "", out[:500]


def test_the_openvino_backend_sends_no_telemetry() -> None:
    """The float path imports OpenVINO without NNCF: its converter must use the telemetry stub too."""
    import subprocess
    import sys

    probe = (
        "from simlm_cli.backends import openvino\n"
        "with openvino.quiet():\n"
        "    import openvino.tools.ovc.telemetry_utils as ovc_telemetry\n"
        "print(ovc_telemetry.tm.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["openvino.tools.ovc.telemetry_stub"], done.stdout


# -- the runtime names the backend --------------------------------------------------------------------------------
def test_auto_is_openvino_on_the_cpu(monkeypatch) -> None:
    monkeypatch.delenv("SIMLM_BACKEND", raising=False)
    monkeypatch.delenv("SIMLM_PRECISION", raising=False)
    for fast, precision in ((True, Precision.bf16), (False, Precision.fp32)):
        monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda fast=fast: fast)
        assert resolve_runtime("cpu", "auto") == Runtime("cpu", precision, Backend.openvino)
    assert resolve_runtime("auto", "fp32") == OPENVINO[Precision.fp32]
    assert resolve_runtime("cpu", "fp32", backend="torch") == TORCH_FP32  # --backend torch keeps PyTorch
    assert resolve_runtime("cpu", TrainingPrecision.fp32, training=True) == TORCH_FP32  # training: always PyTorch


def test_simlm_backend_sets_what_auto_means(monkeypatch) -> None:
    monkeypatch.setenv("SIMLM_BACKEND", "torch")
    assert resolve_runtime("cpu", "fp32").backend is Backend.torch
    assert resolve_runtime("cpu", "fp32", backend=Backend.openvino).backend is Backend.openvino  # a flag still wins
    monkeypatch.setenv("SIMLM_BACKEND", "onnx")
    with pytest.raises(SimlmError, match="SIMLM_BACKEND=onnx: expected one of auto, torch, openvino"):
        resolve_runtime("cpu", "fp32")
    monkeypatch.setenv("SIMLM_BACKEND", "openvino")
    assert resolve_runtime("cpu", TrainingPrecision.fp32, training=True).backend is Backend.torch


def test_on_cuda_auto_is_torch_and_openvino_is_refused(monkeypatch) -> None:
    import torch

    monkeypatch.delenv("SIMLM_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_runtime("cuda", "fp32") == Runtime("cuda:0", Precision.fp32, Backend.torch)
    with pytest.raises(SimlmError, match=r"^--backend openvino runs on the CPU; --device cuda:0 is not supported"):
        resolve_runtime("cuda", "fp32", backend="openvino")
    with pytest.raises(ValueError):
        Runtime("cuda:0", Precision.fp32, Backend.openvino)


def test_runtime_describes_its_backend() -> None:
    assert OPENVINO[Precision.bf16].describe() == "cpu, bf16, openvino"
    assert TORCH_FP32.describe() == "cpu, fp32, torch"


# -- real weights ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("precision", list(OPENVINO), ids=lambda p: p.value)
def test_minilm_on_openvino_matches_pytorch_fp32(precision: Precision) -> None:
    """The embedded MiniLM on 24 SciFact passages and 8 queries, per vector (~15 s per precision on 2 cores, most
    of it the conversion)."""
    from simlm_cli.io.corpus import iter_corpus
    from simlm_cli.io.queries import read_queries
    from tests.test_scifact import CORPUS
    from tests.test_scifact import QUERIES as SCIFACT_QUERIES

    settings = resolve_settings(None)
    texts = list(itertools.islice(iter_corpus(CORPUS), 24))
    queries = list(read_queries(SCIFACT_QUERIES).values())[:8]
    reference, encoder = BiEncoder.load(settings, TORCH_FP32), BiEncoder.load(settings, OPENVINO[precision])
    for got, expected in (
        (encoder.encode_passages(texts), reference.encode_passages(texts)),
        (encoder.encode_queries(queries), reference.encode_queries(queries)),
    ):
        similarity = cosines(got, expected)
        print(f"{precision.value}: cosine min {similarity.min():.6f} mean {similarity.mean():.6f}")
        assert similarity.min() >= MIN_COSINE[precision]
