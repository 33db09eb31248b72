"""`simlm train` under torchrun: two gloo processes with batch B each end where one process with batch 2B does, and
the same `--global-batch-size 2B` gives each of them that share: the flags say the paper's batch whatever the number
of processes (issue 23).

The in-batch negatives are gathered across processes (with gradients) and DDP averages the gradients, so both
runs take the same optimizer steps over the same queries. Dropout is off in the model built here: dropout masks
come from each process's own random stream and would differ between the two set-ups.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import PASSAGES, run_cli

QUERIES = [f"what about {title.lower()}" for _, title, _ in PASSAGES[:8]]


def _train_file(path: Path) -> Path:
    ids = [docid for docid, _, _ in PASSAGES]
    records = [
        {"qid": f"t{i}", "query": text, "positives": [ids[i]], "negatives": [ids[(i + 3) % len(ids)], ids[(i + 5) % len(ids)]]}
        for i, text in enumerate(QUERIES)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _without_dropout(source: Path, target: Path) -> Path:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def test_two_processes_train_as_one_with_the_whole_batch(tmp_path, tiny_bert_dir, tiny_data):
    from safetensors.torch import load_file

    model = _without_dropout(tiny_bert_dir, tmp_path / "model")
    train_file = _train_file(tmp_path / "train.jsonl")
    common = ["train", "--train-file", str(train_file), "--corpus", str(tiny_data.corpus), "--model", str(model),
              "--negatives", "2", "--max-steps", "3", "--lr", "1e-3", "--device", "cpu", "--precision", "fp32"]  # fmt: skip
    one = run_cli([*common, "--global-batch-size", "4", "--output", tmp_path / "one"])
    assert one.returncode == 0, one.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "simlm_cli"]
    two = subprocess.run([*launch, *common, "--global-batch-size", "4", "--output", str(tmp_path / "two")], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert "1 process(es) x batch 4" in one.stderr and "= 4 queries per step" in one.stderr
    assert "2 process(es) x batch 2" in two.stderr and "= 4 queries per step" in two.stderr
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    start = load_file(str(model / "model.safetensors"))
    assert a.keys() == b.keys()
    # Softmax ignores a shift shared by all of a row's scores, so the key bias has no true gradient: what it gets is
    # rounding noise, which Adam scales up to full-size steps that differ between the two set-ups.
    for key in (k for k in a if not k.endswith("attention.self.key.bias")):
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    moved = [k for k in a if k in start and not torch.equal(a[k], start[k])]
    assert moved, "training changed nothing"
    losses = [[json.loads(line)["loss"] for line in (tmp_path / d / "train_log.jsonl").read_text().splitlines()]
              for d in ("one", "two")]  # fmt: skip
    assert len(losses[0]) == len(losses[1]) == 2  # steps 1 and 3
    for x, y in zip(*losses):
        assert abs(x - y) < 1e-4, losses
