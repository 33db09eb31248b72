"""Fault tests (issue 10): a process killed with SIGKILL, which runs no cleanup at all, loses nothing it had made
whole and leaves nothing a later command would take as whole."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import SIMLM, cli_env
from tests.training.finetuning.test_biencoder import write_train


def _start(args: list) -> subprocess.Popen:
    return subprocess.Popen([*SIMLM, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env())


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "never got far enough to be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stderr.close()


@pytest.mark.slow  # three training processes, ~40 s on 2 cores
def test_train_killed_then_resumed_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, tiny_data, tiny_st_dir):
    from safetensors.torch import load_file
    from torch.testing import assert_close

    train_file = write_train(tmp_path / "train.jsonl")
    args = ["train", "--train-file", train_file, "--corpus", tiny_data.corpus, "--model", tiny_st_dir,
            "--negatives", "2", "--batch-size", "2", "--max-steps", "40", "--save-steps", "1", "--lr", "1e-3",
            "--device", "cpu", "--precision", "fp32"]  # fmt: skip
    whole = _start([*args, "--output", tmp_path / "whole"])
    killed = _start([*args, "--output", tmp_path / "killed"])
    _kill_when(killed, lambda: (tmp_path / "killed" / "checkpoints" / "step-5" / "state.json").is_file())
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model.safetensors").exists()  # it was mid-run
    resumed = subprocess.run([*SIMLM, *map(str, args), "--output", tmp_path / "killed", "--resume"],
                             capture_output=True, env=cli_env(), timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert "resumed from" in resumed.stderr.decode()
    assert whole.wait(600) == 0, whole.stderr.read().decode()
    whole.stderr.close()
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def _big_corpus(path: Path, count: int) -> Path:
    words = ["proteins", "fold", "genes", "stars", "rain", "rivers", "planets", "moons", "cells", "water"]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            text = " ".join(words[(i + j) % len(words)] for j in range(40))
            handle.write(f'{{"_id": "p{i}", "text": "{text}"}}\n')
    return path


def test_encode_killed_leaves_nothing_index_would_take_as_whole(tmp_path, tiny_bert_dir, run_cli):
    """The stream is written under a hidden temporary name (`.x.emb.*.tmp`), renamed only when whole: after a
    SIGKILL there is no x.emb, a shard directory's reader skips the hidden file by name, and the file itself, named
    outright, is refused as truncated (no end marker)."""
    corpus = _big_corpus(tmp_path / "corpus.jsonl", 40_000)
    out = tmp_path / "emb"
    out.mkdir()
    proc = _start(["encode", "--model", tiny_bert_dir, "--corpus", corpus, "--output", out / "x.emb",
                   "--device", "cpu", "--batch-size", "64"])  # fmt: skip

    def writing() -> bool:
        return any(p.name.startswith(".x.emb.") and p.stat().st_size > 100_000 for p in out.iterdir())

    _kill_when(proc, writing)
    left = sorted(p.name for p in out.iterdir())
    assert "x.emb" not in left and len(left) == 1 and left[0].endswith(".tmp"), left
    by_directory = run_cli(["index", out, "--output", tmp_path / "idx"])
    assert by_directory.returncode == 2 and "holds no embedding files" in by_directory.stderr, by_directory.stderr
    by_name = run_cli(["index", out / left[0], "--output", tmp_path / "idx"])
    assert by_name.returncode == 2 and "truncated" in by_name.stderr, by_name.stderr
    assert not (tmp_path / "idx").exists()


def test_index_ivfpq_killed_leaves_only_the_documented_temporaries(tmp_path, run_cli):
    """Issue 21: a SIGKILL during `index --type ivfpq` left `.simlm-vectors-*` (its vectors spooled to disk for
    training), a name the README did not give. The spool is now named like every temporary (`.NAME.*.tmp`), and
    `simlm index DIR` over the directory holding it passes it by."""
    from tests.commands.conftest import write_random_stream

    write_random_stream(tmp_path / "big.emb", {"model": "m", "pooling": "cls", "normalize": True}, count=60_000)
    out = tmp_path / "out"
    proc = _start(["index", tmp_path / "big.emb", "--type", "ivfpq", "--output", out / "idx"])
    _kill_when(proc, lambda: out.is_dir() and any(p.name.endswith(".vectors.tmp") for p in out.iterdir()))
    left = sorted(p.name for p in out.iterdir())
    assert left and all(re.fullmatch(r"\.idx\..+\.tmp", name) for name in left), left
    by_directory = run_cli(["index", out, "--output", tmp_path / "idx2"])
    assert by_directory.returncode == 2 and "holds no embedding files" in by_directory.stderr, by_directory.stderr
