"""`simlm encode` under torchrun: each rank encodes its own shard with no sharding flags given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simlm_cli.io.embeddings import EmbeddingReader


def _vectors(paths: list[Path]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for path in paths:
        with open(path, "rb") as handle:
            for ids, vectors in EmbeddingReader(handle, str(path)):
                out.update(zip(ids, vectors))
    return out


@pytest.mark.slow
def test_torchrun_ranks_encode_disjoint_shards(tmp_path: Path, tiny_bert_dir: Path, tiny_data, run_cli) -> None:
    shards = tmp_path / "emb"
    shards.mkdir()
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
              "-m", "simlm_cli", "encode", "--model", str(tiny_bert_dir), "--corpus", str(tiny_data.corpus),
              "--output", f"{shards}/", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(launch, capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(shards.iterdir())
    assert [f.name for f in files] == ["shard-00000-of-00002.emb", "shard-00001-of-00002.emb"]

    whole = run_cli(
        ["encode", "--model", tiny_bert_dir, "--corpus", tiny_data.corpus, "--output", tmp_path / "all.emb"]
    )
    assert whole.returncode == 0, whole.stderr
    sharded, unsharded = _vectors(files), _vectors([tmp_path / "all.emb"])
    assert sorted(sharded) == sorted(unsharded) == sorted(p[0] for p in tiny_data.passages)
    for docid, vector in unsharded.items():
        np.testing.assert_allclose(sharded[docid], vector, atol=1e-5)

    built = run_cli(["index", shards, "--output", tmp_path / "idx"])
    assert built.returncode == 0, built.stderr
