"""`simlm train` and `simlm distill` as a user runs them: outputs that load everywhere, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simlm_cli.io.embeddings import EmbeddingReader

from .test_biencoder import TRAIN, scored, write_train


def _vectors(path) -> tuple[list[str], np.ndarray]:
    with open(path, "rb") as handle:
        blocks = list(EmbeddingReader(handle, str(path)))
    return [i for ids, _ in blocks for i in ids], np.concatenate([v for _, v in blocks])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, tiny_st_dir):
    """A 3-step dry run of `simlm train` from the tiny sentence-transformers model, then `simlm encode` of it."""
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("train")
    train_file = write_train(root / "train.jsonl")
    out = root / "retriever"
    done = run_cli(
        ["train", "--train-file", train_file, "--corpus", tiny_data.corpus, "--model", tiny_st_dir,
         "--output", out, "--negatives", "2", "--dry-run", "--lr", "1e-3"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    encoded = run_cli(["encode", "--model", out, "--corpus", tiny_data.corpus, "--output", root / "emb"])
    assert encoded.returncode == 0, encoded.stderr
    return out, root / "emb", done.stderr


def test_train_writes_a_model_that_sentence_transformers_loads_with_the_same_vectors(trained, tiny_data):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    out, emb, _ = trained
    settings = json.loads((out / "simlm.json").read_text())
    # The initial model's own settings (its sentence-transformers config: mean pooling, 128 tokens), kept since no
    # flag changed them (issue 23, item 4: `train` used to switch it to [CLS] and 32/144 tokens).
    assert settings["pooling"] == "mean" and settings["query_max_length"] == 128
    assert settings["passage_format"] == "concat" and settings["normalize"] is True
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert (out / "train_log.jsonl").is_file() and (out / "loss.png").is_file()
    AutoModel.from_pretrained(out)  # a plain HF directory
    ids, vectors = _vectors(emb)
    st = SentenceTransformer(str(out), device="cpu")
    texts = {i: (f"{t} {x}" if t else x) for i, t, x in tiny_data.passages}
    expected = st.encode([texts[i] for i in ids], normalize_embeddings=False, convert_to_numpy=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_train_log_says_what_it_trained(trained):
    _, _, stderr = trained
    assert "mean pooling" in stderr and "1 positive + 2 negatives" in stderr
    assert "pooling mean (sentence-transformers config)" in stderr
    assert "query_max_length 128 (sentence-transformers config)" in stderr
    assert "skipped 1 queries (1 with no positive)" in stderr


def test_distill_dry_run_and_missing_teacher_scores(tmp_path, tiny_data, trained, run_cli):
    out, _, _ = trained
    scored_file = write_train(tmp_path / "scored.jsonl", scored())
    done = run_cli(
        ["distill", "--train-file", scored_file, "--corpus", tiny_data.corpus, "--model", out,
         "--output", tmp_path / "student", "--negatives", "2", "--dry-run"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    log = [json.loads(line) for line in (tmp_path / "student" / "train_log.jsonl").read_text().splitlines()]
    assert {"loss", "loss_kl", "loss_contrastive"} <= set(log[-1])
    assert json.loads((tmp_path / "student" / "simlm.json").read_text())["pooling"] == "mean"  # the student's own
    assert "pooling mean (simlm.json)" in done.stderr

    unscored = write_train(tmp_path / "unscored.jsonl", TRAIN)
    bad = run_cli(
        ["distill", "--train-file", unscored, "--corpus", tiny_data.corpus, "--model", out,
         "--output", tmp_path / "nope", "--dry-run"]
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and f"{unscored}:1" in bad.stderr and "no score" in bad.stderr
    assert not (tmp_path / "nope" / "model.safetensors").exists()


def test_global_batch_size_splits_over_processes_and_accumulation():
    from simlm_cli.errors import SimlmError
    from simlm_cli.training.trainer import per_process_batch

    assert per_process_batch(64, world=4, grad_accum=1) == 16  # the paper's retrievers: 4 GPUs x 16
    assert per_process_batch(64, world=8, grad_accum=1) == 8  # its re-ranker: 8 GPUs x 8
    assert per_process_batch(64, world=1, grad_accum=4) == 16  # one GPU that holds 16: accumulate 4
    with pytest.raises(SimlmError, match="--global-batch-size 64 does not split evenly over 3 process"):
        per_process_batch(64, world=3, grad_accum=1)


def test_global_and_per_process_batch_together_is_one_line_error(tmp_path, tiny_data, trained, run_cli):
    out, _, _ = trained
    done = run_cli(
        ["train", "--train-file", write_train(tmp_path / "t.jsonl"), "--corpus", tiny_data.corpus, "--model", out,
         "--output", tmp_path / "o", "--batch-size", "2", "--global-batch-size", "4", "--dry-run"]
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "simlm: error: give --batch-size (per process) or --global-batch-size (all processes), not both"
    ], done.stderr


# -- where each encoder setting comes from (issue 23, item 4) -------------------------------------------------------
def test_a_flag_overrides_the_models_own_setting_and_the_log_names_each_source(tmp_path, tiny_data, tiny_st_dir):
    """`--pooling cls` over a mean-pooled model: pooling from the flag, every other setting still the model's."""
    from tests.conftest import run_cli

    out = tmp_path / "cls"
    done = run_cli(
        ["train", "--train-file", write_train(tmp_path / "train.jsonl"), "--corpus", tiny_data.corpus, "--model",
         tiny_st_dir, "--output", out, "--negatives", "1", "--dry-run", "--pooling", "cls"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = json.loads((out / "simlm.json").read_text())
    assert (settings["pooling"], settings["query_max_length"], settings["passage_format"]) == ("cls", 128, "concat")
    assert "pooling cls (flags)" in done.stderr
    assert "passage_format concat (sentence-transformers config)" in done.stderr


COMMANDS_WITH_SETTINGS = {
    ("train",): ("pooling", "normalize", "query_max_length", "passage_max_length", "passage_format"),
    ("distill",): ("pooling", "normalize", "query_max_length", "passage_max_length", "passage_format"),
    ("encode",): ("pooling", "normalize", "query_max_length", "passage_max_length", "passage_format"),
    ("rerank", "train"): ("max_length",),
}


@pytest.mark.parametrize("path", list(COMMANDS_WITH_SETTINGS), ids=" ".join)
def test_settings_a_model_has_default_to_not_given(path):
    """Typer defaults of None: a value there would override the model's own (train's `--pooling` was
    "[default: cls]", which turned a mean-pooled model into a [CLS] one)."""
    import typer
    from typer.testing import CliRunner

    from simlm_cli.cli import app

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    params = {p.name: p for p in command.params}
    for name in COMMANDS_WITH_SETTINGS[path]:
        assert params[name].default is None, (path, name, params[name].default)
    text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
    assert "[default: cls]" not in text and "model's own" in text


def test_save_epochs_writes_each_epochs_model(tmp_path, tiny_data, tiny_st_dir, run_cli):
    """--save-epochs: 3 usable queries at the dry run's batch 2 are 2 steps an epoch, so its 3 steps leave epoch 1
    (after step 2) and a partial epoch 2 (the final model, byte for byte); epoch 1 is a model `encode` loads."""
    from safetensors.numpy import load_file

    out = tmp_path / "retriever"
    done = run_cli(
        ["train", "--train-file", write_train(tmp_path / "train.jsonl"), "--corpus", tiny_data.corpus,
         "--model", tiny_st_dir, "--output", out, "--negatives", "2", "--dry-run", "--lr", "1e-3", "--epochs", "5",
         "--save-epochs"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch-1", "epoch-2"]
    final, last, first = (
        load_file(d / "model.safetensors") for d in (out, out / "epochs/epoch-2", out / "epochs/epoch-1")
    )
    assert all(np.array_equal(final[k], last[k]) for k in final)
    assert any(not np.array_equal(final[k], first[k]) for k in final)
    encoded = run_cli(
        ["encode", "--model", out / "epochs/epoch-1", "--corpus", tiny_data.corpus, "--output", tmp_path / "e"]
    )
    assert encoded.returncode == 0, encoded.stderr
    # A fresh run into the same output does not keep the earlier run's epochs.
    again = run_cli(
        ["train", "--train-file", tmp_path / "train.jsonl", "--corpus", tiny_data.corpus, "--model", tiny_st_dir,
         "--output", out, "--negatives", "2", "--dry-run", "--max-steps", "1", "--overwrite"]
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert not (out / "epochs").exists()
