"""The public plugin API (`simlm_cli.api`): a third-party objective built only from it loads through the
`simlm.objectives` entry point and trains; an incompatible API version is refused in one line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from simlm_cli import api
from simlm_cli.errors import SimlmError
from simlm_cli.training.pretraining.registry import load_objective, objective_names, resolve_options

from .conftest import batch_of

PLUGIN_DIR = Path(__file__).with_name("third_party")
ENTRY_POINTS = {
    "toy": "toy_objective:ToyObjective",
    "toy-future": "toy_objective:Future",
    "toy-unversioned": "toy_objective:Unversioned",
    "toy-not-an-objective": "toy_objective:StepOutput",
}


@pytest.fixture()
def installed(tmp_path, monkeypatch) -> None:
    """The toy package as pip would leave it: its module importable, a dist-info naming its entry points."""
    dist = tmp_path / "toy_objective-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-objective\nVersion: 0.1\n")
    lines = [f"{name} = {target}" for name, target in ENTRY_POINTS.items()]
    (dist / "entry_points.txt").write_text("[simlm.objectives]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))


def _simlm_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return {m for m in modules if m.split(".")[0] == "simlm_cli"}


def test_the_toy_and_the_bundled_objectives_import_only_the_public_api():
    bundled = Path(api.__file__).parents[1] / "plugins" / "simlm_objectives"
    files = [PLUGIN_DIR / "toy_objective.py", *sorted(bundled.glob("*.py"))]
    assert len(files) >= 7
    for path in files:
        assert _simlm_imports(path) <= {"simlm_cli.api"}, path


def test_a_third_party_objective_loads_through_the_entry_point_and_trains(installed, tiny_model, tokenizer):
    assert {"toy", "rlm"} <= set(objective_names())
    cls = load_objective("toy")
    assert cls.__module__ == "toy_objective" and issubclass(cls, api.Objective)
    values = resolve_options(cls, [("loss-weight", "2.5")])
    assert values == {"mask_rate": 0.25, "loss_weight": 2.5}
    with pytest.raises(SimlmError, match="--loss-weight -1.0: must be positive"):
        resolve_options(cls, [("loss-weight", "-1")])
    objective = cls(str(tiny_model), tokenizer, values, lambda _m: None)
    batch = batch_of(tokenizer, ["the cell protein gene of the human brain and heart"] * 4)
    out = objective(batch, torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and set(out.parts) == {"mlm"}
    assert objective.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_simlm_pretrain_runs_it(installed, app, tiny_model, toy_corpus, tmp_path):
    out = tmp_path / "toy"
    args = ["pretrain", "--objective", "toy", "--corpus", str(toy_corpus), "--output", str(out), "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--model", str(tiny_model), "--loss-weight", "0.5"])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file()
    assert "encoder pretrained with the toy objective" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("toy-future", "objective 'toy-future' (toy_objective:Future) needs simlm plugin API 2.0; this simlm provides "
                       f"{api.API_VERSION}"),
        ("toy-unversioned", "objective 'toy-unversioned' (toy_objective:Unversioned) declares api_version ''"),
        ("toy-not-an-objective", "(toy_objective:StepOutput) is not a subclass of simlm_cli.api.Objective"),
    ],
)  # fmt: skip
def test_an_incompatible_plugin_is_one_line(installed, app, toy_corpus, tmp_path, name, message):
    with pytest.raises(SimlmError) as caught:
        load_objective(name)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    args = ["pretrain", "--objective", name, "--corpus", str(toy_corpus), "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, SimlmError) and message in str(result.exception)


@pytest.mark.parametrize(("declared", "accepted"), [("1.0", True), ("1.3", True), ("1.4", False), ("0.9", False),
                                                  ("2.0", False)])  # fmt: skip
def test_version_rule(declared, accepted, monkeypatch):
    """Same major, and a minor no newer than this simlm's (checked against a pretend API 1.3)."""
    from simlm_cli.training.pretraining import registry

    monkeypatch.setattr(registry, "API_VERSION", "1.3")
    cls = type("Versioned", (api.Objective,), {"api_version": declared})
    if accepted:
        registry.check_api_version(cls, "x")
    else:
        with pytest.raises(SimlmError, match=f"x needs simlm plugin API {declared}; this simlm provides 1.3"):
            registry.check_api_version(cls, "x")
