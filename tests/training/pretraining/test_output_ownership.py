"""Training directories are owned provably (issue 21, item 2): only simlm's own marker (`.simlm-run.json`) makes
an output directory simlm's; a `checkpoints/` folder or a `train_log.jsonl` proves nothing. A non-empty output
needs --resume or --overwrite, --overwrite removes only what the earlier run recorded, and a directory without the
marker is refused even with --overwrite. For every trainer: pretrain, train, distill, rerank train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simlm_cli.errors import SimlmError
from simlm_cli.training.run_dir import RUN_MARKER, check_train_output, read_marker
from tests.conftest import run_main as simlm

from .test_trainer import _log, _trainer

TRAINERS = {
    "train": ["train"],
    "distill": ["distill"],
    "rerank-train": ["rerank", "train"],
    "pretrain": ["pretrain", "--objective", "mlm"],
}


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None for p in directory.rglob("*")}


def command(name: str, output: Path, corpus: Path, model: Path, *extra: str) -> list[object]:
    args = [*TRAINERS[name], "--corpus", corpus, "--output", output, "--model", model, *extra]
    return args if name == "pretrain" else [*args, "--train-file", corpus]  # refused before the file is read


def refused(monkeypatch, capfd, args: list[object], directory: Path, says: str) -> None:
    before = snapshot(directory)
    code, err = simlm(monkeypatch, capfd, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("simlm: error: "), (code, err)
    assert says in lines[0], lines[0]
    assert snapshot(directory) == before  # nothing written, nothing removed


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """The probe's user directory: their config.json and README.md, an empty checkpoints/ and a train_log.jsonl,
    and their own checkpoints/epoch3.ckpt."""
    project = tmp_path / "proj"
    (project / "checkpoints").mkdir(parents=True)
    (project / "checkpoints" / "epoch3.ckpt").write_bytes(b"the user's weights")
    (project / "config.json").write_text('{"mine": true}')
    (project / "README.md").write_text("my project\n")
    (project / "train_log.jsonl").write_text('{"step": 1}\n')
    return project


# -- directories simlm did not make --------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [[], ["--overwrite"], ["--resume"]], ids=["plain", "overwrite", "resume"])
@pytest.mark.parametrize("name", list(TRAINERS))
def test_a_user_directory_with_checkpoints_and_a_log_is_refused(
    name, flags, user_project, toy_corpus, tiny_model, monkeypatch, capfd
) -> None:
    """`simlm train --output proj` overwrote the user's config.json and README.md, and a second run deleted their
    checkpoints/epoch3.ckpt: a checkpoints/ folder or a train_log.jsonl no longer counts as simlm's."""
    args = command(name, user_project, toy_corpus, tiny_model, *flags)
    refused(
        monkeypatch,
        capfd,
        args,
        user_project,
        f"is not a directory a simlm training run created (no valid {RUN_MARKER})",
    )


def test_an_empty_checkpoints_folder_alone_is_not_ownership(tmp_path, toy_corpus, tiny_model, monkeypatch, capfd):
    project = tmp_path / "proj"
    (project / "checkpoints").mkdir(parents=True)
    refused(monkeypatch, capfd, command("train", project, toy_corpus, tiny_model), project, "no valid")


@pytest.mark.parametrize(
    "marker",
    ["", "[1]", '{"tool": "other", "written": []}', '{"tool": "simlm", "written": ["../victim"]}'],
    ids=["empty", "not-an-object", "another-tool", "names-outside"],
)
def test_an_invalid_marker_is_not_ownership(marker, tmp_path, toy_corpus, tiny_model, monkeypatch, capfd) -> None:
    """A tampered marker naming `../victim` must never make --overwrite remove anything outside the directory."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    project = tmp_path / "proj"
    project.mkdir()
    (project / RUN_MARKER).write_text(marker)
    (project / "config.json").write_text("{}")
    args = command("train", project, toy_corpus, tiny_model, "--overwrite")
    refused(monkeypatch, capfd, args, tmp_path, "no valid")
    assert victim.read_text() == "keep"


# -- simlm's own directory: --resume, --overwrite, or refused ---------------------------------------------------------
def test_a_run_marks_its_directory_and_records_what_it_wrote(tiny_model, toy_corpus, tmp_path) -> None:
    out = tmp_path / "run"
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=2, save_steps=1).run()
    marker = read_marker(out)
    assert marker is not None and marker["tool"] == "simlm" and marker["version"] and marker["created"]
    assert isinstance(marker["command"], list) and marker["command"][0] == "simlm"
    on_disk = {p.name for p in out.iterdir()} - {RUN_MARKER}
    assert on_disk == set(marker["written"]), (on_disk, marker["written"])
    assert {"train_log.jsonl", "checkpoints", "config.json", "model.safetensors", "README.md", "loss.png"} <= on_disk


def test_rerunning_over_a_finished_run_is_refused_without_resume_or_overwrite(
    tiny_model, toy_corpus, tmp_path, monkeypatch, capfd
) -> None:
    """It silently discarded the earlier model."""
    out = tmp_path / "run"
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=2, save_steps=1).run()
    with pytest.raises(
        SimlmError, match="holds an earlier simlm training run; pass --resume to continue it or --overwrite"
    ):
        _trainer("mlm", tiny_model, toy_corpus, out, max_steps=2).run()
    for name in TRAINERS:
        refused(monkeypatch, capfd, command(name, out, toy_corpus, tiny_model), tmp_path, "pass --resume")


def test_overwrite_replaces_only_what_the_earlier_run_wrote(tiny_model, toy_corpus, tmp_path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "run"
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=4, save_steps=1, seed=1).run()
    (out / "notes.txt").write_text("the user's notes")  # added by the user: never simlm's to remove
    first = load_file(str(out / "model.safetensors"))
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=2, save_steps=2, seed=2, overwrite=True).run()
    assert (out / "notes.txt").read_text() == "the user's notes"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2"]  # the earlier step-3/4 are gone
    assert [r["step"] for r in _log(out)] == [1, 2]
    second = load_file(str(out / "model.safetensors"))
    assert any(not (first[k] == second[k]).all() for k in first)
    assert "notes.txt" not in read_marker(out)["written"]


def test_resume_and_overwrite_exclude_each_other(tmp_path) -> None:
    with pytest.raises(SimlmError, match="--resume and --overwrite exclude each other"):
        check_train_output(tmp_path / "new", resume=True, overwrite=True)


def test_resume_keeps_the_marker_and_continues(tiny_model, toy_corpus, tmp_path) -> None:
    out = tmp_path / "run"
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=4, save_steps=2, stop_at_step=2).run()
    created = read_marker(out)["created"]
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=4, save_steps=2, resume=True).run()
    assert read_marker(out)["created"] == created
    assert [r["step"] for r in _log(out)] == [1, 2, 3, 4] and (out / "config.json").is_file()


def test_a_model_inside_the_output_is_refused_with_overwrite(tiny_model, toy_corpus, tmp_path, monkeypatch, capfd):
    """`--model out --output out --overwrite` would remove the model it starts from."""
    out = tmp_path / "run"
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=1, save_steps=1).run()
    args = command("pretrain", out, toy_corpus, out, "--overwrite")
    refused(monkeypatch, capfd, args, tmp_path, f"{out}: is the input {out}")


def test_a_directory_holding_only_the_marker_counts_as_empty(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_MARKER).write_text(json.dumps({"tool": "simlm", "written": ["train_log.jsonl"]}))
    check_train_output(out)  # nothing an earlier run left would be lost


def test_the_cli_passes_overwrite_to_the_trainer(tiny_model, toy_corpus, tmp_path, monkeypatch, capfd) -> None:
    out = tmp_path / "run"
    args = [*TRAINERS["pretrain"], "--corpus", toy_corpus, "--output", out, "--model", tiny_model, "--dry-run"]
    assert simlm(monkeypatch, capfd, *args)[0] == 0
    (out / "notes.txt").write_text("keep")
    code, err = simlm(monkeypatch, capfd, *args, "--overwrite")
    assert code == 0, err
    assert "--overwrite: removed the earlier run's" in err and (out / "notes.txt").read_text() == "keep"
    assert read_marker(out)["command"][-1] == "--overwrite"
