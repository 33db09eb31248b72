"""simlm_cli.backends.BACKENDS: the one place that says which backend runs what (issue 27, item 4)."""

from __future__ import annotations

import pytest

from simlm_cli.backends import BACKENDS, SPECS
from simlm_cli.device import Backend, Precision, Runtime, resolve_runtime
from simlm_cli.errors import SimlmError


def test_the_backend_flag_offers_auto_and_every_registered_backend() -> None:
    assert [member.value for member in Backend] == ["auto", *(spec.name for spec in BACKENDS)]


@pytest.mark.parametrize("spec", BACKENDS, ids=lambda spec: spec.name)
def test_a_runtime_is_valid_exactly_where_its_backend_says_it_runs(spec) -> None:
    for precision in (Precision.fp32, Precision.bf16, Precision.fp16, Precision.int8):
        for device in ("cpu", "cuda:0"):
            if spec.runs(device.split(":")[0], precision.value):
                assert Runtime(device, precision, Backend(spec.name)).backend.value == spec.name
            else:
                with pytest.raises(ValueError):
                    Runtime(device, precision, Backend(spec.name))


def test_auto_takes_the_lowest_ranked_backend_that_runs_it(monkeypatch) -> None:
    monkeypatch.delenv("SIMLM_BACKEND", raising=False)
    for precision in ("fp32", "bf16", "int8"):
        runners = [spec for spec in BACKENDS if spec.runs("cpu", precision)]
        expected = min(runners, key=lambda spec: spec.auto_rank).name
        assert resolve_runtime("cpu", precision).backend.value == expected


def test_a_backend_refuses_what_it_does_not_run_in_one_line(monkeypatch) -> None:
    monkeypatch.delenv("SIMLM_BACKEND", raising=False)
    for spec in BACKENDS:
        missing = [p for p in ("fp32", "bf16", "int8") if spec.runs("cpu", p) is False and "cpu" in spec.devices]
        for precision in missing:
            with pytest.raises(SimlmError, match=f"--backend {spec.name} does not run it"):
                resolve_runtime("cpu", precision, backend=spec.name)


def test_the_environment_sets_auto_only_where_its_backend_runs(monkeypatch) -> None:
    monkeypatch.setenv("SIMLM_BACKEND", "torch")
    assert resolve_runtime("cpu", "fp32").backend is Backend.torch
    assert "int8" not in SPECS["torch"].precisions
    assert resolve_runtime("cpu", "int8").backend.value != "torch"  # int8: auto's own rule
