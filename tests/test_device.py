"""`--device`/`--precision` resolution on the CPU, and the SIMLM_PRECISION default for `auto`."""

from __future__ import annotations

import pytest

from simlm_cli import device
from simlm_cli.device import Precision, resolve_runtime
from simlm_cli.errors import SimlmError


def test_auto_follows_the_cpu_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMLM_PRECISION", raising=False)
    for fast, expected in ((True, Precision.bf16), (False, Precision.fp32)):
        monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda fast=fast: fast)
        assert resolve_runtime("cpu", "auto").precision is expected


def test_the_environment_sets_what_auto_means(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setenv("SIMLM_PRECISION", "fp32")
    assert resolve_runtime("cpu", "auto").precision is Precision.fp32
    assert resolve_runtime("cpu", "bf16").precision is Precision.bf16  # a flag still wins
    monkeypatch.setenv("SIMLM_PRECISION", "fp64")
    with pytest.raises(SimlmError, match="SIMLM_PRECISION=fp64: expected one of"):
        resolve_runtime("cpu", "auto")
    monkeypatch.setenv("SIMLM_PRECISION", "fp16")
    with pytest.raises(SimlmError, match="fp16 needs a CUDA device"):
        resolve_runtime("cpu", "auto")


def test_cuda_is_refused_where_there_is_none() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises(SimlmError, match="no CUDA device is visible"):
        resolve_runtime("cuda", "auto")


def test_gpu_check_refuses_a_machine_without_cuda() -> None:
    """benchmarks/gpu_check.py is run on a GPU machine; without one it says so on one line and exits 2."""
    import subprocess
    import sys
    from pathlib import Path

    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "gpu_check: error: no CUDA device is visible to PyTorch; nothing to check"
