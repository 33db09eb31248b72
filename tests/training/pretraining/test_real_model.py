"""The documented smoke path on the embedded MiniLM: pretrain --dry-run, then `simlm encode` loads the result."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

CORPUS = Path(__file__).resolve().parents[3] / "simlm_cli" / "data" / "scifact" / "corpus.jsonl"


@pytest.mark.slow
def test_rlm_dry_run_on_minilm_then_encode(tmp_path, monkeypatch):
    import typer

    from simlm_cli.commands import encode, pretrain

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = typer.Typer(pretty_exceptions_enable=False)
    pretrain.register(app)
    encode.register(app)
    out = tmp_path / "models" / "rlm"
    result = CliRunner().invoke(
        app, ["pretrain", "--objective", "rlm", "--corpus", str(CORPUS), "--output", str(out), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file() and (out / "objective" / "model.safetensors").is_file()
    emb = tmp_path / "x.emb"
    result = CliRunner().invoke(
        app, ["encode", "--model", str(out), "--corpus", str(CORPUS), "--output", str(emb), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert emb.exists()
