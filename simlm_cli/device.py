"""Device, precision and backend, chosen per command: `--device auto|cpu|cuda[:N]`, `--precision auto|fp32|bf16|fp16`,
and for the inference commands (encode, search, mine --index, rerank run/score) also `int8` and `--backend` (what
runs the forward pass). Which backend runs which device and precision is `simlm_cli.backends.BACKENDS`; nothing here
names a backend but PyTorch, which training always runs on."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from enum import Enum
from functools import cache

from simlm_cli.backends import BACKENDS, SPECS, BackendSpec
from simlm_cli.errors import SimlmError


class Precision(str, Enum):
    """Every precision a runtime can have; the inference commands' `--precision` takes all of them."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    int8 = "int8"


# What runs an inference command's forward pass: `auto`, then one member per registered backend
# (`simlm_cli/backends/`), in the registry's order.
Backend = Enum("Backend", [("auto", "auto"), *((spec.name, spec.name) for spec in BACKENDS)], type=str)
TRAINING_BACKEND = "torch"


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


def _runners(precision: str) -> list[BackendSpec]:
    return [spec for spec in BACKENDS if precision in spec.precisions]


def _devices_text(devices: set[str] | tuple[str, ...]) -> str:
    return " or ".join("the CPU" if device == "cpu" else "CUDA" for device in sorted(devices))


def _labels(specs: list[BackendSpec]) -> str:
    return " or ".join(spec.label for spec in specs)


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu" or "cuda:N"
    precision: Precision  # never auto
    # never auto; None: PyTorch where it runs the precision, else the first backend that does
    backend: Backend | None = None

    def __post_init__(self) -> None:
        if self.backend is None:
            torch_spec = SPECS[TRAINING_BACKEND]
            fallback = next((spec for spec in _runners(self.precision.value)), torch_spec)
            name = TRAINING_BACKEND if torch_spec.runs(self.device_type, self.precision.value) else fallback.name
            object.__setattr__(self, "backend", Backend(name))
        spec = SPECS.get(self.backend.value)
        if spec is None or not spec.runs(self.device_type, self.precision.value):
            raise ValueError(f"no runtime runs {self.precision.value} on {self.device} with backend {self.backend}")

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for bf16/fp16 on a backend that runs through it (PyTorch); fp32 runs as it is, and so does a
        backend whose precision is compiled into its model (OpenVINO)."""
        import torch

        if self.precision is Precision.fp32 or not SPECS[self.backend.value].autocast:
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

    Under torchrun, `auto` and `cuda` mean this process's own GPU (LOCAL_RANK). A precision only CPU backends run
    (int8): `auto` then means the CPU and an explicit CUDA device is refused. Training always runs on PyTorch, so a
    precision it does not run is refused for `training`; for inference see `_backend`.
    """
    precision = Precision(getattr(precision, "value", precision))
    backend = Backend(getattr(backend, "value", backend))
    if precision is not Precision.auto:
        runners = _runners(precision.value)
        if training and TRAINING_BACKEND not in {spec.name for spec in runners}:
            raise SimlmError(
                f"--precision {precision.value} is for inference (encode, search, mine --index, rerank run/score), "
                "not training"
            )
        devices = {device for spec in runners for device in spec.devices}
        if devices == {"cpu"}:
            if device not in ("auto", "cpu"):
                raise SimlmError(
                    f"--precision {precision.value} runs on the CPU ({_labels(runners)}); --device {device} is not "
                    "supported with it"
                )
            device = "cpu"
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
    chosen = Backend(TRAINING_BACKEND) if training else _backend(backend, device, precision)
    return Runtime(device, precision, chosen)


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


def _backend(backend: Backend, device: str, precision: Precision) -> Backend:
    """The inference backend: `auto` is the registered backend of lowest `auto_rank` that runs the device and precision
    (`simlm_cli.backends.BACKENDS`: OpenVINO on the CPU, PyTorch on CUDA). SIMLM_BACKEND sets what `auto` means (the
    test suite runs torch) where that backend runs the device and precision; a flag still wins."""
    device_type = device.split(":")[0]
    if backend is Backend.auto:
        value = os.environ.get(BACKEND_ENV, "").strip()
        try:
            backend = Backend(value or "auto")
        except ValueError:
            names = ", ".join(member.value for member in Backend)
            raise SimlmError(f"{BACKEND_ENV}={value}: expected one of {names}") from None
        if backend is not Backend.auto and not SPECS[backend.value].runs(device_type, precision.value):
            backend = Backend.auto  # the environment's choice cannot run this (int8 on PyTorch): auto's rule
    if backend is Backend.auto:
        runners = [spec for spec in BACKENDS if spec.runs(device_type, precision.value)]
        return Backend(min(runners, key=lambda spec: spec.auto_rank).name)
    spec = SPECS[backend.value]
    if device_type not in spec.devices:
        raise SimlmError(
            f"--backend {backend.value} runs on {_devices_text(spec.devices)}; --device {device} is not supported "
            "with it"
        )
    if precision.value not in spec.precisions:
        raise SimlmError(
            f"--precision {precision.value} runs on {_labels(_runners(precision.value))}; --backend {backend.value} "
            "does not run it"
        )
    return backend
