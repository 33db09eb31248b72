"""recipes/dev_choice.py (the recipes' choices on dev) and recipes/report.py's table of seeds, choices and paired
comparisons, on hand-written evaluate outputs: fast, no simlm command runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def script(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "recipes" / name), *map(str, args)], capture_output=True,
                          text=True, check=True)  # fmt: skip


def write(path: Path, value: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def test_best_takes_the_highest_and_the_earliest_of_equals(tmp_path: Path) -> None:
    e1, e2, e3 = (write(tmp_path / f"e{i}.json", {"ndcg@10": v}) for i, v in enumerate((0.5, 0.7, 0.7), 1))
    assert script("dev_choice.py", "best", e1, e2, e3, "--metric", "ndcg@10").stdout.strip() == str(e2)
    assert script("dev_choice.py", "best", e3, e1, "--metric", "ndcg@10").stdout.strip() == str(e3)


def test_keep_needs_a_strict_gain_and_records_it(tmp_path: Path) -> None:
    base, same, better = (write(tmp_path / f"{n}.json", {"ndcg@10": v}) for n, v in
                          (("in", 0.6), ("same", 0.6), ("better", 0.61)))  # fmt: skip
    record = tmp_path / "stage.json"
    done = script("dev_choice.py", "keep", same, base, "--record", record, "--metric", "ndcg@10", "--field", "epoch=2")
    assert done.stdout.strip() == "dropped"
    assert json.loads(record.read_text()) == {"epoch": "2", "metric": "ndcg@10", "dev": 0.6, "input_dev": 0.6,
                                              "input_file": str(base), "kept": False}  # fmt: skip
    assert script("dev_choice.py", "keep", better, base, "--record", record, "--metric", "ndcg@10").stdout == "kept\n"
    assert json.loads(record.read_text())["kept"] is True


def test_report_shows_seeds_choices_and_comparisons_when_present(tmp_path: Path) -> None:
    metrics = {"ndcg@10": 0.5, "mrr@10": 0.4, "recall@100": 0.9, "recall@1000": 0.95}
    bm25 = write(tmp_path / "bm25.json", metrics)
    seeds = []
    for seed, ndcg in ((1, 0.60), (2, 0.64)):
        run = write(tmp_path / f"s{seed}" / "r1.json", metrics | {"ndcg@10": ndcg})
        write(tmp_path / f"s{seed}" / "r1.stage.json", {"dev": 0.7, "input_dev": 0.65, "kept": seed == 1})
        seeds.append(run)
    # The comparison `simlm evaluate --run A --run B --baseline A --json` prints, for the first seed only: the
    # second has none (an evaluate that does not compare runs), and the table still comes out.
    comparison = {"baseline": "a", "run": "b", "metric": "ndcg@10", "queries": 300, "baseline_mean": 0.5,
                  "run_mean": 0.6, "difference": 0.1, "ci95": [0.05, 0.15], "p_randomization": 0.001,
                  "p_bootstrap": 0.001, "p_randomization_holm": 0.002, "p_bootstrap_holm": 0.002}  # fmt: skip
    write(tmp_path / "s1" / "r1.compare.json", metrics | {"comparisons": [comparison]})
    out = tmp_path / "report"
    script("report.py", "--output", out, "--title", "T", "--note", "trained on fit", f"BM25={bm25}",
           *(f"Retriever1={run}" for run in seeds))  # fmt: skip
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["stage"] for r in rows] == ["BM25", "Retriever1"] and rows[1]["seeds"] == 2
    assert abs(rows[1]["ndcg@10"] - 0.62) < 1e-12 and abs(rows[1]["ndcg@10_sd"] - 0.0282843) < 1e-6
    assert rows[1]["kept"] == 1 and rows[1]["comparisons"] == [comparison] and rows[0]["ndcg@10_sd"] is None
    table = (out / "results.md").read_text()
    assert "| Retriever1 | 0.6200 ± 0.0283 |" in table and "| 1/2 | +0.1000 [+0.0500, +0.1500] p=0.002 |" in table
    assert "trained on fit" in table
