"""DDP on the CPU: two gloo processes under torchrun end with identical weights and a summed batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.mark.parametrize("objective", ["rlm"])
def test_two_process_gloo_training(objective, tiny_model, toy_corpus, tmp_path):
    from safetensors.torch import load_file

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", str(worker), objective, str(tiny_model),
           str(toy_corpus), str(out)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = load_file(str(out / "rank0.safetensors"))
    rank1 = load_file(str(out / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    # the effective batch is the sum over ranks: 2 processes x batch 3 x 2 accumulated micro-steps
    assert all(r["examples"] == 2 * 3 * 2 for r in log)
    # ... of different passages: in every micro-batch the two ranks drew disjoint rows
    rows = [json.loads((out / f"rank{r}.rows.json").read_text()) for r in (0, 1)]
    assert len(rows[0]) == len(rows[1]) == 4 * 2
    for mine, theirs in zip(*rows):
        assert len(mine) == len(theirs) == 3 and not set(mine) & set(theirs), rows
    assert (out / "config.json").is_file() and (out / "checkpoints" / "step-4").is_dir()
