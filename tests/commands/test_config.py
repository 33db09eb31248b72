"""`--config FILE` on every command (issue 27, item 1): options from JSON or YAML, flags overriding them, one-line
errors naming the file and key; the resolved options written beside a run's outputs, and read back."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import typer

from simlm_cli.cli import app
from simlm_cli.io.embeddings import EmbeddingWriter, StreamHeader
from simlm_cli.run_config import RUN_CONFIG_FILE
from simlm_cli.training.run_dir import RUN_MARKER
from tests.conftest import run_main
from tests.training.finetuning.test_biencoder import write_train


def _leaves(command, path=()):
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield " ".join(path), command
    for name, sub in sorted((subcommands or {}).items()):
        yield from _leaves(sub, (*path, name))


def test_every_command_takes_config() -> None:
    leaves = dict(_leaves(typer.main.get_command(app)))
    assert {"train", "distill", "pretrain", "rerank train", "index", "search", "encode"} <= set(leaves)
    missing = [
        name for name, command in leaves.items() if "--config" not in [o for p in command.params for o in p.opts]
    ]
    assert not missing


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("unknown.json", '{"lr": 1e-3, "epoch": 2}', "unknown.json: field 'epoch': no such option for `simlm train`"),
        ("type.json", '{"epochs": "two"}', "type.json: field 'epochs': Input should be a valid number"),
        ("dashed.yaml", "grad-accum: many\n", "dashed.yaml: field 'grad-accum': Input should be a valid integer"),
        (
            "bool.json",
            '{"negatives": true}',
            "bool.json: field 'negatives': expected a value for --negatives, not true",
        ),
        ("list.json", '{"lr": [1, 2]}', "list.json: field 'lr': expected one value, not a list or mapping"),
        ("syntax.json", '{\n"lr": 1e-3,\n}', "syntax.json:3: not valid JSON"),
        ("syntax.yaml", "lr: 1e-3\nepochs: [1\n", "syntax.yaml:3: not valid YAML"),
        ("list.yaml", "- lr\n", "list.yaml: a config file holds a mapping of option names to values"),
        ("other.json", '{"tool": "simlm", "command": "index", "options": {}}', "other.json: the resolved options of"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_file_and_key(monkeypatch, capfd, tmp_path, name, text, message):
    path = _write(tmp_path / name, text)
    code, err = run_main(monkeypatch, capfd, "train", "--config", path)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_a_missing_config_file_is_one_line(monkeypatch, capfd, tmp_path):
    code, err = run_main(monkeypatch, capfd, "index", "--config", tmp_path / "nope.yaml")
    assert code == 2 and err.count("\n") == 1 and "nope.yaml: cannot read the config file" in err, err


def _stream(path, count: int = 20, dim: int = 8):
    vectors = np.random.default_rng(0).standard_normal((count, dim)).astype(np.float32)
    buffer = io.BytesIO()
    writer = EmbeddingWriter(buffer, StreamHeader(dim=dim, dtype="float32", encoder={"model": "m", "pooling": "cls"}))
    writer.write([f"d{i}" for i in range(count)], vectors)
    writer.close()
    path.write_bytes(buffer.getvalue())
    return path


def test_index_reads_yaml_flags_win_and_meta_records_the_resolved_options(monkeypatch, capfd, tmp_path):
    stream = _stream(tmp_path / "a.emb")
    out = tmp_path / "idx"
    config = _write(tmp_path / "index.yaml", f"output: {out}\ntype: hnsw\nhnsw_m: 8\nef-search: 64\n")
    code, err = run_main(monkeypatch, capfd, "index", str(stream), "--config", config, "--type", "flat")
    assert code == 0, err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["index_type"] == "flat"  # the flag, not the file's hnsw
    resolved = meta["run_config"]
    assert resolved["command"] == "index" and resolved["config_file"] == str(config)
    options, sources = resolved["options"], resolved["sources"]
    assert (options["type"], sources["type"]) == ("flat", "flag")
    assert (options["hnsw_m"], sources["hnsw_m"]) == (8, "config file")
    assert (options["ef_search"], sources["ef_search"]) == (64, "config file")
    assert (options["nprobe"], sources["nprobe"]) == (32, "default")
    assert (options["inputs"], sources["inputs"]) == ([str(stream)], "flag")
    assert set(options) == set(sources)

    # The index's meta.json given back rebuilds it: the same options, each from the file but the new --output.
    code, err = run_main(monkeypatch, capfd, "index", "--config", out / "meta.json", "--output", tmp_path / "idx2")
    assert code == 0, err
    repeated = json.loads((tmp_path / "idx2" / "meta.json").read_text())["run_config"]
    assert repeated["options"] == options | {"output": str(tmp_path / "idx2")}
    # null in the file is "not given": the option's default (None) again
    assert {key for key, source in repeated["sources"].items() if source != "config file"} == {"output", "corpus"}
    assert options["corpus"] is None


def test_train_config_file_with_a_flag_over_it_round_trips(tmp_path, tiny_data, tiny_st_dir, run_cli):
    """`simlm train --config cfg.json --epochs 2` (issue 27's Done-means): the flag wins, the rest comes from the
    file, and the output's simlm-config.json, given back with --config, resolves to the same options."""
    out = tmp_path / "retriever"
    config = {
        "train_file": str(write_train(tmp_path / "train.jsonl")), "corpus": str(tiny_data.corpus),
        "model": str(tiny_st_dir), "output": str(out), "negatives": 2, "dry-run": True, "lr": 1e-3, "epochs": 1,
    }  # fmt: skip
    cfg = _write(tmp_path / "cfg.json", json.dumps(config))
    done = run_cli(["train", "--config", cfg, "--epochs", "2"])
    assert done.returncode == 0, done.stderr
    resolved = json.loads((out / RUN_CONFIG_FILE).read_text())
    options, sources = resolved["options"], resolved["sources"]
    assert resolved["command"] == "train"
    assert (options["epochs"], sources["epochs"]) == (2.0, "flag")
    assert (options["lr"], sources["lr"]) == (1e-3, "config file")
    assert (options["negatives"], options["dry_run"], sources["dry_run"]) == (2, True, "config file")
    assert (options["seed"], sources["seed"], options["pooling"]) == (42, "default", None)
    assert RUN_CONFIG_FILE in json.loads((out / RUN_MARKER).read_text())["written"]  # --overwrite removes it

    again = run_cli(["train", "--config", out / RUN_CONFIG_FILE, "--output", tmp_path / "again"])
    assert again.returncode == 0, again.stderr
    repeated = json.loads((tmp_path / "again" / RUN_CONFIG_FILE).read_text())
    assert repeated["options"] == options | {"output": str(tmp_path / "again")}
    assert repeated["sources"]["epochs"] == "config file" and repeated["sources"]["output"] == "flag"


def test_pretrain_hints_config_for_a_mistyped_flag(monkeypatch, capfd, tmp_path):
    """pretrain's own flags are read from the command (no hand-kept list), --config among them."""
    code, err = run_main(monkeypatch, capfd, "pretrain", "--corpus", tmp_path / "c.jsonl", "--output", tmp_path / "o",
                         "--confg", "x")  # fmt: skip
    assert code == 2 and "does not take --confg (did you mean --config?)" in err, err


def test_pretrain_records_objective_options_so_the_run_repeats(tmp_path, tiny_data, tiny_bert_dir, run_cli):
    """An objective's options (`--mask-rate 0.2`, not pretrain's own flags) are recorded as `option`, the form a
    config file gives back."""
    out = tmp_path / "pretrained"
    cfg = _write(tmp_path / "cfg.yaml", f"objective: mlm\ncorpus: {tiny_data.corpus}\nmodel: {tiny_bert_dir}\n"
                                        f"output: {out}\ndry-run: true\nmax_length: 32\n")  # fmt: skip
    done = run_cli(["pretrain", "--config", cfg, "--mask-rate", "0.2"])
    assert done.returncode == 0, done.stderr
    resolved = json.loads((out / RUN_CONFIG_FILE).read_text())
    assert (resolved["options"]["option"], resolved["sources"]["option"]) == (["mask-rate=0.2"], "flag")
    assert (resolved["options"]["max_length"], resolved["sources"]["max_length"]) == (32, "config file")
    again = run_cli(["pretrain", "--config", out / RUN_CONFIG_FILE, "--output", tmp_path / "again"])
    assert again.returncode == 0, again.stderr
    repeated = json.loads((tmp_path / "again" / RUN_CONFIG_FILE).read_text())
    assert repeated["options"] == resolved["options"] | {"output": str(tmp_path / "again")}
    state = json.loads((tmp_path / "again" / "checkpoints" / "step-3" / "state.json").read_text())
    assert "0.2" in str(state["config"]["objective_options"])
