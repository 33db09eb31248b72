"""`--precision int8`: the OpenVINO int8 models against PyTorch fp32, the cache, and what refuses int8."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simlm_cli import device
from simlm_cli.backends import openvino
from simlm_cli.backends import openvino_int8 as int8
from simlm_cli.device import Backend, Precision, Runtime, TrainingPrecision, resolve_runtime
from simlm_cli.errors import SimlmError
from simlm_cli.io.corpus import Passage
from simlm_cli.models import pooling
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.cross_encoder import CrossEncoder
from simlm_cli.models.settings import resolve_settings
from tests.conftest import PASSAGES, QUERIES

CPU_FP32 = Runtime("cpu", Precision.fp32)
CPU_INT8 = Runtime("cpu", Precision.int8)


def passages() -> list[Passage]:
    return [Passage(docid, title, text, line) for line, (docid, title, text) in enumerate(PASSAGES, 1)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def cached_models(cache: Path) -> list[Path]:
    return sorted((cache / "int8").glob("*/" + openvino.MODEL_FILE))


@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_st_dir"])  # cls pooling; mean pooling
def test_int8_vectors_are_close_to_fp32(model: str, request: pytest.FixtureRequest) -> None:
    settings = resolve_settings(str(request.getfixturevalue(model)))
    fp32 = BiEncoder.load(settings, CPU_FP32).encode_passages(passages())
    quantised = BiEncoder.load(settings, CPU_INT8).encode_passages(passages())
    assert quantised.shape == fp32.shape and quantised.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)  # normalised as fp32 is
    similarity = cosines(quantised, fp32)
    # These tiny models have random weights, whose activations static int8 ranges fit worse than a trained
    # model's (MiniLM: mean 0.996 on SciFact, asserted in tests/test_scifact.py); 12 passages, a loose floor.
    assert similarity.mean() >= 0.985 and similarity.min() >= 0.95, similarity
    assert not np.array_equal(quantised, fp32)  # the int8 model did run, not PyTorch


def test_int8_encoding_goes_through_the_one_pooling_function(tiny_bert_dir: Path, monkeypatch) -> None:
    calls = []
    original = pooling.pool

    def spy(hidden, attention_mask, how, normalize):
        calls.append(how)
        return original(hidden, attention_mask, how, normalize)

    monkeypatch.setattr(pooling, "pool", spy)
    encoder = BiEncoder.load(resolve_settings(str(tiny_bert_dir)), CPU_INT8)
    assert isinstance(encoder.encoder, openvino.OvModel)
    encoder.encode_queries([q for _, q in QUERIES])
    assert calls and set(calls) == {"cls"}


def test_a_second_encoder_reuses_the_cached_model(tiny_bert_dir: Path, int8_cache: Path, monkeypatch) -> None:
    settings = resolve_settings(str(tiny_bert_dir))
    first = BiEncoder.load(settings, CPU_INT8).encode_queries(["how do proteins fold"])
    files = cached_models(int8_cache)
    assert files and not list((int8_cache / "int8").glob(".*"))  # published; no temporary directory left
    stamps = {path: path.stat().st_mtime_ns for path in files}

    def no_export(*args, **kwargs):
        raise AssertionError("the cached model was converted again")

    monkeypatch.setattr(openvino, "build", no_export)
    second = BiEncoder.load(settings, CPU_INT8).encode_queries(["how do proteins fold"])
    np.testing.assert_array_equal(first, second)
    assert {path: path.stat().st_mtime_ns for path in cached_models(int8_cache)} == stamps


def test_the_cache_key_follows_the_weights_and_the_settings(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import shutil

    settings = int8.Int8Settings(head="encoder")
    key = openvino.cache_key(tiny_bert_dir, settings)
    assert key == openvino.cache_key(tiny_bert_dir, settings)
    assert key != openvino.cache_key(tiny_bert_dir, replace(settings, inference_precision="bf16"))
    texts = tmp_path / "calibration.jsonl"
    texts.write_text(int8.CALIBRATION_FILE.read_text(encoding="utf-8") + '{"kind": "query", "text": "one more"}\n')
    assert openvino.cache_key(tiny_bert_dir, replace(settings, calibration=texts)) != key  # other texts, other model
    float_graph = openvino.ExportSettings(head="encoder")
    assert openvino.cache_key(tiny_bert_dir, float_graph) not in (
        key,
        openvino.cache_key(tiny_bert_dir, replace(float_graph, inference_precision="bf16")),
    )
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert_dir, copy)
    assert openvino.cache_key(copy, settings) == key  # content, not the path
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert openvino.cache_key(copy, settings) != key


def test_a_graph_that_differs_from_pytorch_is_refused(tiny_bert_dir: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIMLM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(openvino, "FLOAT_TOLERANCE", -1.0)  # no graph can pass: the check itself must refuse
    with pytest.raises(SimlmError, match="OpenVINO graph of .* differs from PyTorch"):
        BiEncoder.load(resolve_settings(str(tiny_bert_dir)), CPU_INT8)
    assert not cached_models(tmp_path)  # nothing half-made was published


def test_converting_writes_nothing_to_stdout(tiny_st_dir: Path, tmp_path: Path, monkeypatch, capfd) -> None:
    """`simlm encode` writes its embedding stream to stdout: NNCF's log lines and progress bars must not land there."""
    monkeypatch.setenv("SIMLM_CACHE_DIR", str(tmp_path))  # a cache miss: the conversion runs
    BiEncoder.load(resolve_settings(str(tiny_st_dir)), CPU_INT8).encode_queries(["how do proteins fold"])
    out, err = capfd.readouterr()
    assert cached_models(tmp_path) and out == "", out[:500]


def test_openvino_and_nncf_send_no_telemetry() -> None:
    """Outside pytest (which NNCF itself treats as a test run) both would send usage telemetry by default."""
    import subprocess
    import sys

    probe = (
        "from simlm_cli.backends import openvino_int8 as int8\n"
        "with int8._quiet_openvino():\n"
        "    import nncf.telemetry.wrapper as nncf_telemetry\n"
        "    import openvino.tools.ovc.telemetry_utils as ovc_telemetry\n"
        "print(isinstance(nncf_telemetry.telemetry, nncf_telemetry.NNCFTelemetryStub), ovc_telemetry.tm.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "openvino.tools.ovc.telemetry_stub"], done.stdout


def test_int8_reranker_scores_are_close_to_fp32(tiny_reranker_dir: Path) -> None:
    queries = [q for _, q in QUERIES for _ in PASSAGES]
    texts = [f"{title} {text}".strip() for _ in QUERIES for _, title, text in PASSAGES]
    fp32 = CrossEncoder.load(str(tiny_reranker_dir), CPU_FP32, batch_size=8).score(queries, texts)
    reranker = CrossEncoder.load(str(tiny_reranker_dir), CPU_INT8, batch_size=8)
    assert isinstance(reranker.model, openvino.OvModel)
    quantised = reranker.score(queries, texts)
    assert quantised.shape == fp32.shape
    # a random tiny model: static int8 ranges fit its activations worse than a trained model's (MiniLM with a
    # fresh head: logit correlation 0.997 on SciFact pairs), so an outlier pair may move by half a std
    error = np.abs(quantised - fp32) / fp32.std()
    print(
        f"logit correlation {np.corrcoef(quantised, fp32)[0, 1]:.4f}, error/std mean {error.mean():.3f} max {error.max():.3f}"
    )
    assert np.corrcoef(quantised, fp32)[0, 1] >= 0.98 and error.mean() <= 0.15 and error.max() <= 1.0


# -- what refuses int8 ------------------------------------------------------------------------------------------
def test_int8_runs_on_the_cpu_and_is_refused_elsewhere(monkeypatch) -> None:
    monkeypatch.delenv("SIMLM_PRECISION", raising=False)
    assert resolve_runtime("auto", "int8") == CPU_INT8  # auto: int8 runs on the CPU only
    assert resolve_runtime("cpu", Precision.int8) == CPU_INT8
    for name in ("cuda", "cuda:0"):
        with pytest.raises(SimlmError, match=f"int8 runs on the CPU .*--device {name} is not supported"):
            resolve_runtime(name, "int8")
    with pytest.raises(SimlmError, match="int8 is for inference .* not training"):
        resolve_runtime("cpu", "int8", training=True)
    assert resolve_runtime("cpu", TrainingPrecision.fp32, training=True) == CPU_FP32


def test_int8_runs_on_openvino_only(monkeypatch) -> None:
    monkeypatch.setenv("SIMLM_BACKEND", "torch")  # what `auto` means does not apply: int8 has one backend
    assert resolve_runtime("cpu", "int8") == CPU_INT8
    with pytest.raises(SimlmError, match="int8 runs on OpenVINO; --backend torch does not run it"):
        resolve_runtime("cpu", "int8", backend=Backend.torch)
    with pytest.raises(ValueError):
        Runtime("cpu", Precision.int8, Backend.torch)


def test_auto_never_means_int8(monkeypatch) -> None:
    monkeypatch.setenv("SIMLM_PRECISION", "int8")
    with pytest.raises(SimlmError, match="SIMLM_PRECISION=int8: int8 is never chosen for `auto`"):
        resolve_runtime("cpu", "auto")
    assert resolve_runtime("cpu", "int8") == CPU_INT8  # asked for on the command line, it is what runs
    monkeypatch.delenv("SIMLM_PRECISION")
    for fast in (True, False):
        monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda fast=fast: fast)
        assert resolve_runtime("cpu", "auto").precision is not Precision.int8


def test_training_precision_has_no_int8() -> None:
    assert "int8" not in {p.value for p in TrainingPrecision}
    assert {p.value for p in TrainingPrecision} | {"int8"} == {p.value for p in Precision}


def test_runtime_describes_int8() -> None:
    assert CPU_INT8.describe() == "cpu, int8, openvino"
    assert os.environ.get("SIMLM_CACHE_DIR")  # tests never write to the user's cache
