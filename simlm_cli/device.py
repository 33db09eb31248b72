"""Device, precision and backend, chosen per command: `--device auto|cpu|cuda[:N]`, `--precision auto|fp32|bf16|fp16`,
and for the inference commands (encode, search, mine --index, rerank run/score) also `int8` (OpenVINO, CPU only) and
`--backend auto|torch|openvino` (what runs the forward pass; `simlm_cli/backends/`)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from enum import Enum
from functools import cache

from simlm_cli.errors import SimlmError


class Precision(str, Enum):
    """Every precision a runtime can have; the inference commands' `--precision` takes all of them."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    int8 = "int8"


class Backend(str, Enum):
    """What runs an inference command's forward pass: one module per backend in `simlm_cli/backends/`."""

    auto = "auto"
    torch = "torch"
    openvino = "openvino"


class TrainingPrecision(str, Enum):
    """The training commands' `--precision`: no int8 (a quantised model cannot be trained), so Typer refuses it."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


@cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bf16 natively (AMX or AVX512-BF16); elsewhere bf16 can be slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "amx_bf16" in flags or "avx512_bf16" in flags
    except OSError:
        pass
    return False


# The inference commands' default batch on CUDA: a token budget of 256 texts at 256 tokens (the former default of
# 256 texts, at its worst case), so short texts travel in larger batches and the memory peak stays where it was.
CUDA_BATCH_TOKENS = 256 * 256


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu" or "cuda:N"
    precision: Precision  # never auto
    backend: Backend | None = None  # never auto; None: openvino for int8 (its only backend), else torch

    def __post_init__(self) -> None:
        int8 = self.precision is Precision.int8
        if self.backend is None:
            object.__setattr__(self, "backend", Backend.openvino if int8 else Backend.torch)
        on_cpu = self.device == "cpu"
        if (
            self.backend is Backend.auto
            or (int8 and self.backend is not Backend.openvino)
            or (self.backend is Backend.openvino and not on_cpu)
        ):
            raise ValueError(f"no runtime runs {self.precision.value} on {self.device} with backend {self.backend}")

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for bf16/fp16 on PyTorch; fp32 runs as it is, and so does an OpenVINO model (its precision is
        compiled into it)."""
        import torch

        if self.precision is Precision.fp32 or self.backend is Backend.openvino:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision is Precision.bf16 else torch.float16
        return torch.autocast(device_type=self.device_type, dtype=dtype)

    def describe(self) -> str:
        return f"{self.device}, {self.precision.value}, {self.backend.value}"


PRECISION_ENV = "SIMLM_PRECISION"


def _precision_from_environment() -> Precision | None:
    """What `auto` means when SIMLM_PRECISION is set (e.g. fp32 everywhere, for results that must not depend on
    whether this CPU has AMX); a flag other than auto still wins."""
    value = os.environ.get(PRECISION_ENV, "").strip()
    if not value:
        return None
    if value == Precision.int8.value:
        # int8 changes the vectors: it is asked for per command, never chosen behind the user's back
        raise SimlmError(f"{PRECISION_ENV}=int8: int8 is never chosen for `auto`; pass --precision int8 to the command")
    try:
        return Precision(value)
    except ValueError:
        choices = ", ".join(p.value for p in TrainingPrecision)
        raise SimlmError(f"{PRECISION_ENV}={value}: expected one of {choices}") from None


def resolve_runtime(
    device: str = "auto",
    precision: Precision | TrainingPrecision | str = Precision.auto,
    training: bool = False,
    backend: Backend | str = Backend.auto,
) -> Runtime:
    """Turn the user's `--device`/`--precision`/`--backend` into a concrete runtime, failing clearly on what cannot
    run.

    Under torchrun, `auto` and `cuda` mean this process's own GPU (LOCAL_RANK). int8 runs on the CPU only:
    `auto` then means the CPU, an explicit CUDA device is refused, and so is int8 for `training`. Training always
    runs on PyTorch; for inference see `_backend`.
    """
    precision = Precision(getattr(precision, "value", precision))
    backend = Backend(getattr(backend, "value", backend))
    if precision is Precision.int8:
        return _int8_runtime(device, training, backend)
    device = _device(device)
    on_cuda = device.startswith("cuda")
    if precision is Precision.auto:
        precision = _precision_from_environment() or precision
    if precision is Precision.auto:
        if on_cuda:
            import torch

            precision = Precision.bf16 if torch.cuda.is_bf16_supported() else Precision.fp16
        else:
            precision = Precision.bf16 if cpu_has_fast_bf16() else Precision.fp32
    if precision is Precision.fp16 and not on_cuda:
        raise SimlmError("--precision fp16 needs a CUDA device; on the CPU use bf16 or fp32")
    return Runtime(device, precision, Backend.torch if training else _backend(backend, device))


def _device(device: str) -> str:
    """`--device` as a concrete "cpu" or "cuda:N" that exists here."""
    import torch

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    elif device == "cuda":
        device = f"cuda:{local_rank}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SimlmError(f"--device {device}: no CUDA device is visible to PyTorch")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise SimlmError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device != "cpu":
        raise SimlmError(f"--device {device}: expected auto, cpu, cuda or cuda:N")
    return device


BACKEND_ENV = "SIMLM_BACKEND"


def _backend(backend: Backend, device: str) -> Backend:
    """The inference backend: `auto` is OpenVINO on the CPU (faster than PyTorch at fp32 and bf16 for the same
    vectors within cosine 0.9999 / 0.999: the README's "CPU backends" has the figures) and PyTorch on CUDA, where
    OpenVINO does not run. SIMLM_BACKEND sets what `auto` means (the test suite runs torch); a flag still wins."""
    if backend is Backend.auto:
        value = os.environ.get(BACKEND_ENV, "").strip()
        try:
            backend = Backend(value or "auto")
        except ValueError:
            raise SimlmError(f"{BACKEND_ENV}={value}: expected one of auto, torch, openvino") from None
    if backend is Backend.auto:
        return Backend.openvino if device == "cpu" else Backend.torch
    if backend is Backend.openvino and device != "cpu":
        raise SimlmError(f"--backend openvino runs on the CPU; --device {device} is not supported with it")
    return backend


def _int8_runtime(device: str, training: bool, backend: Backend) -> Runtime:
    if training:
        raise SimlmError(
            "--precision int8 is for inference (encode, search, mine --index, rerank run/score), not training"
        )
    if device not in ("auto", "cpu"):
        raise SimlmError(f"--precision int8 runs on the CPU (OpenVINO); --device {device} is not supported with it")
    if backend is Backend.torch:
        raise SimlmError("--precision int8 runs on OpenVINO; --backend torch does not run it")
    return Runtime("cpu", Precision.int8, Backend.openvino)
