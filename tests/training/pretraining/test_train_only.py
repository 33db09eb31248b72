"""`simlm pretrain --train-only head`: fit a (fresh) MLM head on a frozen encoder, usable as rlm's generator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from simlm_cli.errors import SimlmError
from simlm_cli.training.pretraining.registry import load_objective, resolve_options
from simlm_cli.training.trainer import TrainConfig, Trainer

from .conftest import batch_of, make_objective

SETTINGS = ["--batch-size", "8", "--max-length", "32", "--log-steps", "1", "--device", "cpu", "--save-steps", "100"]


def _pretrain(app, model: Path, corpus: Path, output: Path, *extra: str) -> Path:
    args = ["pretrain", "--model", str(model), "--corpus", str(corpus), "--output", str(output), *SETTINGS, *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return output


def _log(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]


def _encoder_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The saved encoder tensors, named as in a bare BertModel (a masked LM prefixes them with `bert.`)."""
    from safetensors.torch import load_file

    saved = load_file(str(model_dir / "model.safetensors"))
    return {k.removeprefix("bert."): v for k, v in saved.items() if not k.startswith("cls.")}


@pytest.fixture(scope="module")
def trained_headless(app, tiny_headless, toy_corpus, tmp_path_factory) -> Path:
    """An encoder that knows the toy corpus, saved without its MLM head (as all-MiniLM-L6-v2 comes): a random
    tiny encoder's features are too poor for any head to predict from."""
    from transformers import AutoModel, AutoTokenizer

    work = tmp_path_factory.mktemp("encoder")
    mlm = _pretrain(app, tiny_headless, toy_corpus, work / "mlm", "--objective", "mlm", "--max-steps", "30",
                    "--lr", "1e-2")  # fmt: skip
    AutoModel.from_pretrained(mlm).save_pretrained(work / "headless")
    AutoTokenizer.from_pretrained(mlm).save_pretrained(work / "headless")
    return work / "headless"


@pytest.fixture(scope="module")
def fitted(app, trained_headless, toy_corpus, tmp_path_factory) -> Path:
    """A fresh head fitted on that frozen encoder: 40 steps at a head-sized lr."""
    out = tmp_path_factory.mktemp("fit") / "head"
    flags = ["--objective", "mlm", "--train-only", "head", "--max-steps", "40", "--lr", "1e-2", "--warmup-steps", "2"]
    return _pretrain(app, trained_headless, toy_corpus, out, *flags)


def test_head_only_keeps_the_encoder_bit_identical_and_fits_a_fresh_head(fitted, trained_headless, tokenizer):
    from transformers import AutoModelForMaskedLM

    before, after = _encoder_weights(trained_headless), _encoder_weights(fitted)
    # A masked LM has no pooler (simlm never uses it): every other tensor is saved, bit for bit.
    assert set(before) - set(after) == {"pooler.dense.weight", "pooler.dense.bias"} and set(after) <= set(before)
    for key in after:
        assert torch.equal(before[key], after[key]), key
    mlm, info = AutoModelForMaskedLM.from_pretrained(fitted, output_loading_info=True)
    assert not info["missing_keys"], info  # the fitted head was saved with the encoder
    log = _log(fitted)
    first, last = np.mean([r["loss"] for r in log[:5]]), np.mean([r["loss"] for r in log[-5:]])
    assert last < first - 0.1, (first, last)
    # transformers' own masked-LM forward gives the logits simlm's head gives on the loaded output.
    obj = make_objective("mlm", fitted, tokenizer).eval()
    mlm.eval()
    batch = batch_of(tokenizer, ["the cell protein increase", "a gene of the brain and heart"])
    with torch.no_grad():
        ours = obj.head(obj.encode(batch["input_ids"], batch["attention_mask"]).last_hidden_state)
        theirs = mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(ours, theirs)


def test_head_only_changes_an_existing_head_and_nothing_else(app, tiny_model, toy_corpus, tmp_path):
    from safetensors.torch import load_file

    out = _pretrain(app, tiny_model, toy_corpus, tmp_path / "o", "--objective", "mlm", "--train-only", "head",
                    "--max-steps", "3", "--lr", "1e-2")  # fmt: skip
    before, after = load_file(str(tiny_model / "model.safetensors")), load_file(str(out / "model.safetensors"))
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed and all(k.startswith("cls.predictions.") for k in changed), changed
    assert "cls.predictions.transform.dense.weight" in changed


@pytest.mark.parametrize("name", ["rlm", "rtd", "enc-dec-mlm", "condenser", "autoencoder"])
def test_every_objective_trains_only_its_heads(name, tiny_model, tokenizer):
    obj = make_objective(name, tiny_model, tokenizer)
    obj.train_only_heads()
    obj.train()
    heads = {id(p) for head in obj.prediction_heads() for p in head.parameters()}
    trainable = [p for p in obj.parameters() if p.requires_grad]
    assert trainable and all(id(p) in heads for p in trainable)
    assert not any(p.requires_grad for p in obj.encoder.parameters())
    assert not obj.encoder.training and all(head.training for head in obj.prediction_heads())
    out = obj(batch_of(tokenizer, ["the cell protein increase of the brain", "a gene and heart risk"]),
              torch.Generator().manual_seed(0))  # fmt: skip
    assert "gen" not in out.parts  # a random generator is frozen too
    out.loss.backward()
    assert all(p.grad is not None for p in trainable)


def test_fitted_head_is_a_real_frozen_generator(app, fitted, toy_corpus, tmp_path):
    from safetensors.torch import load_file

    common = ["--objective", "rlm", "--max-steps", "4", "--lr", "1e-4"]
    random_gen = _pretrain(app, fitted, toy_corpus, tmp_path / "random", *common)
    real_gen = _pretrain(app, fitted, toy_corpus, tmp_path / "real", *common, "--generator", str(fitted))
    random_ratio = np.mean([r["replace_ratio"] for r in _log(random_gen)])
    real_ratio = np.mean([r["replace_ratio"] for r in _log(real_gen)])
    assert random_ratio > 0.9 and real_ratio < random_ratio - 0.05, (random_ratio, real_ratio)
    assert "loss_gen" not in _log(real_gen)[-1]
    saved = load_file(str(real_gen / "objective" / "model.safetensors"))
    source = load_file(str(fitted / "model.safetensors"))
    generator = {k.removeprefix("generator.model."): v for k, v in saved.items() if k.startswith("generator.model.")}
    assert generator and all(torch.equal(v, source[k]) for k, v in generator.items() if k in source)


def _head_trainer(model: Path, corpus: Path, output: Path, train_only: str = "head", **kwargs) -> Trainer:
    from transformers import AutoTokenizer

    cls = load_objective("mlm")
    values = resolve_options(cls, [])

    def build(path, tok, log):
        built = cls(path, tok, values, log)
        if train_only == "head":
            built.train_only_heads()
        return built

    settings = dict(max_steps=6, batch_size=4, lr=1e-2, save_steps=3, log_steps=1, max_length=32, device="cpu")
    config = TrainConfig(objective="mlm", corpus=str(corpus), output=str(output), objective_options=values,
                         train_only=train_only, **(settings | kwargs))  # fmt: skip
    return Trainer(config, build, AutoTokenizer.from_pretrained(model), str(model), log=lambda m: None)


def test_head_only_resumes_exactly_and_refuses_a_changed_setting(tiny_model, toy_corpus, tmp_path):
    from safetensors.torch import load_file

    _head_trainer(tiny_model, toy_corpus, tmp_path / "full").run()
    part = tmp_path / "part"
    _head_trainer(tiny_model, toy_corpus, part, stop_at_step=3).run()
    with pytest.raises(SimlmError, match="--train-only all"):
        _head_trainer(tiny_model, toy_corpus, part, train_only="all", resume=True).run()
    _head_trainer(tiny_model, toy_corpus, part, resume=True).run()
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(part / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    start = load_file(str(tiny_model / "model.safetensors"))
    assert all(torch.equal(start[k], b[k]) for k in start if not k.startswith("cls."))


def test_unknown_train_only_value_is_one_line(monkeypatch, capsys, tiny_model, toy_corpus, tmp_path):
    from simlm_cli.cli import main

    argv = ["simlm", "pretrain", "--train-only", "encoder", "--model", str(tiny_model), "--corpus", str(toy_corpus)]
    monkeypatch.setattr(sys, "argv", [*argv, "--output", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--train-only" in lines[0] and "'encoder' is not one of" in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_generator_that_is_no_masked_lm_directory_is_one_error(tiny_model, tiny_headless, tokenizer, tmp_path):
    with pytest.raises(SimlmError, match=r"^--generator \S+missing: not a directory$"):
        make_objective("rlm", tiny_model, tokenizer, generator=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SimlmError, match=r"^--generator \S+empty: cannot load .* as a masked LM"):
        make_objective("rlm", tiny_model, tokenizer, generator=str(tmp_path / "empty"))
    # A checkpoint without an MLM head would sample from a random one: refused, saying how to fit one.
    with pytest.raises(SimlmError, match=r"^--generator \S+: no MLM head in the checkpoint; fit one first with"):
        make_objective("rlm", tiny_model, tokenizer, generator=str(tiny_headless))
