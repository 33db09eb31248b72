"""The shared trainer: data order, loss going down, output directory, exact resumption, CLI surface."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from simlm_cli.errors import SimlmError
from simlm_cli.training.data import DataOrder
from simlm_cli.training.pretraining.registry import load_objective, resolve_options
from simlm_cli.training.trainer import TrainConfig, Trainer

from .conftest import write_corpus


def _trainer(objective: str, model: Path, corpus: Path, output: Path, options=(), **kwargs) -> Trainer:
    from transformers import AutoTokenizer

    cls = load_objective(objective)
    values = resolve_options(cls, list(options))
    defaults = dict(max_steps=6, batch_size=4, lr=1e-3, save_steps=3, log_steps=1, max_length=32, device="cpu")
    defaults.update(kwargs)
    config = TrainConfig(
        objective=objective, corpus=str(corpus), output=str(output), objective_options=values, **defaults
    )
    tokenizer = AutoTokenizer.from_pretrained(model)
    return Trainer(
        config, lambda path, tok, log: cls(path, tok, values, log), tokenizer, str(model), log=lambda m: None
    )


def _log(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]


def test_data_order_is_deterministic_and_shards_are_disjoint():
    a = DataOrder(50, 4, seed=7)
    assert np.array_equal(a.indices(3), DataOrder(50, 4, seed=7).indices(3))
    assert not np.array_equal(a.indices(0), a.indices(a.batches_per_epoch))  # a new shuffle each epoch
    epoch = np.concatenate([a.indices(i) for i in range(a.batches_per_epoch)])
    assert sorted(epoch.tolist()) == list(range(50))
    r0, r1 = DataOrder(50, 4, 7, 0, 2), DataOrder(50, 4, 7, 1, 2)
    s0 = np.concatenate([r0.indices(i) for i in range(r0.batches_per_epoch)])
    s1 = np.concatenate([r1.indices(i) for i in range(r1.batches_per_epoch)])
    assert not set(s0) & set(s1) and len(s0) == len(s1) == 25


def test_data_order_shuffles_once_per_epoch(monkeypatch):
    """The epoch's shuffle is cached (a large corpus was re-shuffled every micro-step); the batches are the ones
    the former per-call shuffle gave, on one rank and on two."""
    from simlm_cli.training import data

    def fresh(order: DataOrder, micro_batch: int) -> np.ndarray:  # the former, uncached computation
        epoch, index = order.position(micro_batch)
        perm = np.random.default_rng([order.seed, epoch]).permutation(order.size)
        perm = perm[: order.per_rank * order.world][order.rank :: order.world]
        return perm[index * order.batch_size : (index + 1) * order.batch_size]

    orders = (DataOrder(53, 4, seed=3), DataOrder(53, 4, 3, 1, 2))
    expected = [[fresh(o, i) for i in range(3 * o.batches_per_epoch)] for o in orders]
    data.epoch_order.cache_clear()
    shuffles = []
    real = np.random.default_rng
    monkeypatch.setattr(data.np.random, "default_rng", lambda seed: shuffles.append(seed) or real(seed))
    for order, batches in zip(orders, expected):
        for i, batch in enumerate(batches):
            assert np.array_equal(order.indices(i), batch)
    assert shuffles == [[3, 0], [3, 1], [3, 2]] * 2  # once per epoch and rank, not once per micro-batch
    assert not order.indices(0).flags.writeable  # a caller cannot reorder the cached epoch


def test_the_optimizer_is_fused_adamw_with_the_same_update():
    """AdamW's fused kernel (torch's default on the CPU is a Python loop over tensors, ~3x slower): the same
    update as the loop, to float rounding, with weight decay on matrices only."""
    import copy

    from simlm_cli.training.trainer import build_optimizer

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    loop = copy.deepcopy(model)
    fused = build_optimizer(model, lr=1e-2, weight_decay=0.1)
    assert fused.defaults["fused"] is True and fused.param_groups[1]["weight_decay"] == 0.0
    groups = [
        {"params": g["params"], "weight_decay": g["weight_decay"]}
        for g in build_optimizer(loop, 1e-2, 0.1).param_groups
    ]
    reference = torch.optim.AdamW(groups, lr=1e-2, foreach=False)
    for _ in range(5):
        x = torch.randn(4, 8)
        for net, optimizer in ((model, fused), (loop, reference)):
            optimizer.zero_grad()
            net(x).pow(2).sum().backward()
            optimizer.step()
    for a, b in zip(model.parameters(), loop.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_loss_falls_and_output_is_complete(tiny_model, toy_corpus, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "rlm"
    _trainer("rlm", tiny_model, toy_corpus, out, max_steps=80, save_steps=40, warmup_steps=4, log_steps=1).run()
    log = _log(out)
    assert [r["step"] for r in log] == list(range(1, 81))
    first = np.mean([r["loss_enc"] + r["loss_dec"] for r in log[:5]])
    last = np.mean([r["loss_enc"] + r["loss_dec"] for r in log[-5:]])
    assert last < 0.8 * first, (first, last)
    for key in ("loss", "loss_enc", "loss_dec", "loss_gen", "replace_ratio", "tokens_per_s", "lr", "examples"):
        assert key in log[-1]
    assert log[-1]["examples"] == 4
    for name in (
        "config.json",
        "model.safetensors",
        "loss.png",
        "objective/model.safetensors",
        "objective/objective.json",
    ):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-40", "step-80"]
    AutoModel.from_pretrained(out)
    assert len(AutoTokenizer.from_pretrained(out)) == len(AutoTokenizer.from_pretrained(tiny_model))


@pytest.mark.parametrize(
    ("objective", "accum"), [("rlm", 2), ("condenser", 1)]
)  # rlm: generator sampling, dropout, accumulation
def test_resume_continues_exactly(objective, accum, tiny_model, toy_corpus, tmp_path):
    from safetensors.torch import load_file

    full = tmp_path / "full"
    _trainer(objective, tiny_model, toy_corpus, full, grad_accum=accum, save_total_limit=5).run()
    part = tmp_path / "part"
    _trainer(objective, tiny_model, toy_corpus, part, grad_accum=accum, stop_at_step=3, save_total_limit=5).run()
    assert not (part / "config.json").exists()  # interrupted: no final model yet
    _trainer(objective, tiny_model, toy_corpus, part, grad_accum=accum, resume=True, save_total_limit=5).run()
    a = load_file(str(full / "checkpoints" / "step-6" / "model.safetensors"))
    b = load_file(str(part / "checkpoints" / "step-6" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    interrupted_log = _log(part)
    assert [r["step"] for r in interrupted_log] == list(range(1, 7))
    assert interrupted_log[-1]["loss"] == pytest.approx(_log(full)[-1]["loss"], rel=1e-5)
    start = load_file(str(tiny_model / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(a[f"mlm.{key}"], start[key])  # it did train


def test_resume_without_checkpoint_and_wrong_objective(tiny_model, toy_corpus, tmp_path):
    with pytest.raises(SimlmError, match="no checkpoint"):
        _trainer("mlm", tiny_model, toy_corpus, tmp_path / "x", resume=True).run()
    _trainer("mlm", tiny_model, toy_corpus, tmp_path / "y", max_steps=3, stop_at_step=3).run()
    with pytest.raises(SimlmError, match="is a mlm run"):
        _trainer("enc-dec-mlm", tiny_model, toy_corpus, tmp_path / "y", max_steps=3, resume=True).run()


def test_resume_refuses_other_data_settings_and_logs_other_changes(tiny_model, toy_corpus, tmp_path):
    """A checkpoint continues only the run it belongs to: another batch, accumulation or seed would not."""
    out = tmp_path / "run"
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=6, stop_at_step=3).run()
    for change in ({"batch_size": 2}, {"grad_accum": 2}, {"seed": 7}):
        with pytest.raises(SimlmError, match="other data settings: --" + next(iter(change)).replace("_", "-")):
            _trainer("mlm", tiny_model, toy_corpus, out, max_steps=6, resume=True, **change).run()
    said = []
    trainer = _trainer("mlm", tiny_model, toy_corpus, out, max_steps=6, resume=True, lr=5e-4)
    trainer.log = said.append
    trainer.run()
    assert any("options changed since" in line and "lr 0.001 -> 0.0005" in line for line in said), said


def test_corpus_without_text_is_a_one_line_error(tiny_model, tmp_path):
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text('{"_id": "a", "title": "", "text": " "}\n{"_id": "b", "text": ""}\n')
    with pytest.raises(SimlmError, match="no usable text"):
        _trainer("mlm", tiny_model, corpus, tmp_path / "out").run()


# -- the command ---------------------------------------------------------------------------------------------
def test_cli_lists_objectives(app):
    result = CliRunner().invoke(app, ["pretrain", "--list-objectives"])
    assert result.exit_code == 0, result.output
    for name in ("rlm", "mlm", "enc-dec-mlm", "rtd", "autoencoder", "condenser", "--decoder-mask-rate"):
        assert name in result.output


def test_cli_objective_help_lists_its_options(app):
    result = CliRunner().invoke(app, ["pretrain", "--objective", "condenser", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for opt in load_objective("condenser").options:
        assert f"--{opt.name}" in result.output


def test_cli_rlm_help_shows_the_papers_settings_beside_the_defaults(app):
    result = CliRunner().invoke(app, ["pretrain", "--objective", "rlm", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # rich's box, wrapped lines joined
    for shown in (
        "the paper: 3e-4 at 2,048 passages a step",  # --lr
        "the paper: 4,000 of 80,000",  # --warmup-steps
        "(the paper: 0)",  # --weight-decay
        "the paper: 80,000",  # --max-steps
        "--generator-loss-weight FLOAT (default: 0.2)",
        "google/electra-base-generator, frozen",
    ):
        assert shown in text, shown


def test_msmarco_recipe_passes_the_papers_pretraining_settings():
    recipes = Path(__file__).resolve().parents[3] / "recipes"
    recipe = (recipes / "msmarco.sh").read_text(encoding="utf-8")
    # msmarco.sh (and nq.sh) source the chain (paper_chain.sh), which sets the paper's values and pretrains with them
    assert ". recipes/paper_chain.sh" in recipe
    chain = (recipes / "paper_chain.sh").read_text(encoding="utf-8")
    settings = dict(re.findall(r"^(PT_[A-Z_]+)=(\S+)", chain, flags=re.M))
    assert settings["PT_LR"] == "3e-4" and settings["PT_WARMUP"] == "4000" and float(settings["PT_WEIGHT_DECAY"]) == 0
    assert settings["PT_ENC_MASK"] == "0.3" and settings["PT_DEC_MASK"] == "0.5" and settings["PT_STEPS"] == "80000"
    launch = chain[chain.index("launch pretrain") :].split("$dry", 1)[0]
    for flag in ("--lr $PT_LR", "--warmup-steps $PT_WARMUP", "--weight-decay $PT_WEIGHT_DECAY"):
        assert flag in launch, flag


@pytest.mark.parametrize("name", ["rlm", "mlm", "enc-dec-mlm", "rtd", "autoencoder", "condenser"])
def test_cli_dry_run_every_objective(name, app, tiny_model, toy_corpus, tmp_path):
    out = tmp_path / name
    args = ["pretrain", "--objective", name, "--corpus", str(toy_corpus), "--output", str(out), "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--model", str(tiny_model)])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file() and len(_log(out)) == 3


def test_cli_rejects_options_the_objective_does_not_take(app, tiny_model, toy_corpus, tmp_path):
    args = ["pretrain", "--objective", "mlm", "--corpus", str(toy_corpus), "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--decoder-mask-rate", "0.5"])
    assert isinstance(result.exception, SimlmError)
    assert "does not take --decoder-mask-rate" in str(result.exception)
    result = CliRunner().invoke(app, [*args, "--option", "mask-rate=0.4", "--model", str(tiny_model), "--dry-run"])
    assert result.exit_code == 0, result.output


def test_cli_continues_from_its_own_output(app, tiny_model, toy_corpus, tmp_path):
    first = tmp_path / "first"
    base = ["pretrain", "--objective", "rlm", "--corpus", str(toy_corpus), "--dry-run"]
    assert CliRunner().invoke(app, [*base, "--model", str(tiny_model), "--output", str(first)]).exit_code == 0
    result = CliRunner().invoke(app, [*base, "--model", str(first), "--output", str(tmp_path / "second")])
    assert result.exit_code == 0, result.output


def test_rerun_into_the_same_directory_starts_afresh_with_overwrite(tiny_model, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", count=12)
    out = tmp_path / "o"
    _trainer("mlm", tiny_model, corpus, out, max_steps=2, save_steps=1).run()
    _trainer("mlm", tiny_model, corpus, out, max_steps=2, save_steps=1, overwrite=True).run()
    assert [r["step"] for r in _log(out)] == [1, 2]


# -- issue 10: another's directory, poisoned losses, damaged checkpoints -------------------------------------------
def test_output_that_is_someone_elses_directory_is_refused_untouched(tiny_model, toy_corpus, tmp_path):
    """The trainer overwrote config.json and deleted objective/ in a directory it did not make (issue 10, item 2)."""
    theirs = tmp_path / "theirs"
    (theirs / "objective").mkdir(parents=True)
    (theirs / "objective" / "keep.txt").write_text("keep")
    (theirs / "config.json").write_text('{"mine": true}')
    with pytest.raises(SimlmError, match="is not a directory a simlm training run created"):
        _trainer("mlm", tiny_model, toy_corpus, theirs, max_steps=2).run()
    assert (theirs / "objective" / "keep.txt").read_text() == "keep"
    assert (theirs / "config.json").read_text() == '{"mine": true}'
    assert sorted(p.name for p in theirs.iterdir()) == ["config.json", "objective"]
    # Its own earlier output is still the trainer's to replace, when asked (--overwrite).
    ours = tmp_path / "ours"
    _trainer("mlm", tiny_model, toy_corpus, ours, max_steps=2).run()
    _trainer("mlm", tiny_model, toy_corpus, ours, max_steps=2, overwrite=True).run()


def _poisoned(trainer: Trainer, from_call: int) -> Trainer:
    """The model's loss turns NaN from its `from_call`-th forward on, as a NaN teacher score makes it."""
    build = trainer.build

    def poisoned_build(path, tok, log):
        model = build(path, tok, log)
        forward, calls = model.forward, [0]

        def nan_forward(batch, rng):
            out = forward(batch, rng)
            calls[0] += 1
            if calls[0] >= from_call:
                out.loss = out.loss * float("nan")
            return out

        model.forward = nan_forward
        return model

    trainer.build = poisoned_build
    return trainer


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_model, toy_corpus, tmp_path):
    """`distill` with a NaN teacher score saved an all-NaN model with exit 0 (issue 10, item 3)."""
    from safetensors.torch import load_file

    out = tmp_path / "run"
    trainer = _poisoned(_trainer("mlm", tiny_model, toy_corpus, out, max_steps=6, save_steps=2), from_call=4)
    with pytest.raises(SimlmError, match=r"step 4: the loss is not finite \(nan\).*checkpoints/step-2"):
        trainer.run()
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-2"]
    weights = load_file(str(out / "checkpoints" / "step-2" / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()


def test_a_checkpoint_that_cannot_be_written_is_one_error_and_keeps_the_last_whole_one(
    tiny_model, toy_corpus, tmp_path, monkeypatch
):
    """A full disk made torch.save raise "[enforce fail at inline_container.cc:672] . unexpected pos 133144320 vs
    133144212" out of `simlm pretrain` (CI, stop 31): the error names the checkpoint and the space left, the
    half-written one is gone and the last whole one stays for --resume."""
    out = tmp_path / "run"
    trainer = _trainer("mlm", tiny_model, toy_corpus, out, max_steps=6, save_steps=2)
    real_save, calls = torch.save, []

    def short_write(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            real_save(obj, path, *args, **kwargs)  # the bytes written before the disk filled
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 133144320 vs 133144212")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(SimlmError) as caught:
        trainer.run()
    message = str(caught.value)
    assert "\n" not in message
    assert re.fullmatch(
        rf"{re.escape(str(out / 'checkpoints' / 'step-4'))}: cannot write the checkpoint \(RuntimeError: .*unexpected "
        r"pos 133144320 vs 133144212\); [\d,]+ MiB free on its disk",
        message,
    ), message
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2"]
    monkeypatch.setattr(torch, "save", real_save)
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=6, save_steps=2, resume=True).run()
    assert (out / "model.safetensors").exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda ck: (ck / "state.json").write_text("{garbage"),
        lambda ck: (ck / "state.json").write_text("[1, 2]"),
        lambda ck: (ck / "state.json").write_text('{"objective": "mlm"}'),
        lambda ck: torch.save({"x": SimlmError("planted")}, ck / "trainer.pt"),  # not weights: pickle refuses
        lambda ck: (ck / "trainer.pt").write_bytes(b"not a torch file"),
    ],
    ids=["garbage-state", "list-state", "state-without-step", "planted-trainer-pt", "garbage-trainer-pt"],
)
def test_resume_from_a_damaged_checkpoint_is_one_error(damage, tiny_model, toy_corpus, tmp_path):
    """These were tracebacks (issue 10, item 8); a planted pickle must never run."""
    from simlm_cli.errors import InputError

    out = tmp_path / "run"
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=4, save_steps=2, stop_at_step=2).run()
    damage(out / "checkpoints" / "step-2")
    with pytest.raises(InputError, match="step-2: corrupt checkpoint, cannot resume from it"):
        _trainer("mlm", tiny_model, toy_corpus, out, max_steps=4, save_steps=2, resume=True).run()


# -- issue 21, item 4: more damaged checkpoints ---------------------------------------------------------------------
def _edit_state(checkpoint: Path, **changes) -> None:
    state = json.loads((checkpoint / "state.json").read_text())
    (checkpoint / "state.json").write_text(json.dumps(state | changes))


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        (lambda ck: _edit_state(ck, step=-7), r"step-2: corrupt checkpoint.*field 'step': expected an integer >= 0"),
        (lambda ck: _edit_state(ck, step="2"), r"step-2: corrupt checkpoint.*field 'step'.*'2'"),
        (lambda ck: (ck / "state.json").write_text("[" * 10_000), r"state.json: JSON nested deeper than 100 levels"),
    ],
    ids=["negative-step", "string-step", "deeply-nested-state"],
)
def test_resume_from_a_checkpoint_with_a_bad_step_is_one_error(damage, expect, tiny_model, toy_corpus, tmp_path):
    """`"step": -7` was a ValueError deep in the trainer, a 10,000-deep state.json a RecursionError."""
    from simlm_cli.errors import InputError

    out = tmp_path / "run"
    _trainer("mlm", tiny_model, toy_corpus, out, max_steps=4, save_steps=2, stop_at_step=2).run()
    damage(out / "checkpoints" / "step-2")
    with pytest.raises(InputError, match=expect):
        _trainer("mlm", tiny_model, toy_corpus, out, max_steps=4, save_steps=2, resume=True).run()


def test_the_config_is_never_changed_the_trainer_derives_a_new_one(tiny_model, toy_corpus, tmp_path):
    """Issue 27, item 2: the run's derived values (a dry run's caps, the steps from --epochs, the default warmup)
    are a new TrainConfig, not edits of the one asked for."""
    import dataclasses

    trainer = _trainer("mlm", tiny_model, toy_corpus, tmp_path / "run", batch_size=None, epochs=1.0, dry_run=True)
    asked = trainer.config
    with pytest.raises(dataclasses.FrozenInstanceError):
        asked.max_steps = 1
    trainer.run()
    assert (asked.batch_size, asked.warmup_steps, asked.max_steps, asked.log_steps) == (None, None, 6, 1)
    derived = trainer.config
    assert derived is not asked and derived.batch_size == 2 and derived.max_steps == 3 and derived.warmup_steps == 0
    assert (
        json.loads((tmp_path / "run" / "checkpoints" / "step-3" / "state.json").read_text())["config"]["batch_size"]
        == 2
    )
