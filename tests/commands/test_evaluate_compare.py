"""`simlm evaluate --run A --run B ...`: each run against the baseline, query by query (issue 22, item 1). The figures
are checked against per-query values from single-run `evaluate` calls, recall worked out by hand, and exact
enumerations of every sign flip; a single run's output stays as it was."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from simlm_cli.eval.compare import Comparison, holm, paired_bootstrap
from simlm_cli.pipeline.evaluate import render_comparisons

# The tiny qrels judge q1 (d1 2, d2 1), q2 (d4 2, d5 1), q3 (d9 2), q4 (d11 2, d12 1).
RUNS = {
    "a.trec": {"q1": ["d1", "d3"], "q2": ["d6", "d4"], "q3": ["d9"]},  # no q4: it scores 0
    "b.trec": {"q1": ["d2", "d1"], "q2": ["d4"], "q3": ["d7", "d9"], "q4": ["d11", "d12"]},
    "c.trec": {"q1": ["d1", "d2"], "q2": ["d4", "d5"], "q3": ["d9"], "q4": ["d12", "d11"]},
}
QIDS = ["q1", "q2", "q3", "q4"]
METRICS = ["-M", "ndcg@10", "-M", "recall@10"]


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    for name, run in RUNS.items():
        lines = [f"{q} Q0 {d} {rank} {10 - rank} t" for q, docs in run.items() for rank, d in enumerate(docs, 1)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    return tmp_path


def evaluate(run_cli, tiny_data, runs: Path, *args: str):
    done = run_cli(["evaluate", "--qrels", tiny_data.qrels, *args], cwd=runs)
    assert done.returncode == 0, done.stderr
    return done


def single_run_per_query(run_cli, tiny_data, runs: Path, name: str) -> dict[str, np.ndarray]:
    evaluate(run_cli, tiny_data, runs, "--run", name, *METRICS, "--per-query", f"{name}.tsv")
    rows = [line.split("\t") for line in (runs / f"{name}.tsv").read_text().splitlines()]
    values = {(metric, qid): float(value) for metric, qid, value in rows}
    return {metric: np.array([values[metric, qid] for qid in QIDS]) for metric in ("ndcg@10", "recall@10")}


def exact_randomization(d: np.ndarray) -> float:
    flips = [abs(np.dot(signs, d)) for signs in itertools.product((1, -1), repeat=d.size)]
    return sum(f >= abs(d.sum()) - 1e-12 for f in flips) / 2**d.size


def test_three_runs_compared_with_the_first(run_cli, tiny_data, runs: Path) -> None:
    done = evaluate(run_cli, tiny_data, runs, "--run", "a.trec", "--run", "b.trec", "--run", "c.trec", *METRICS,
                    "--json", "--resamples", "500", "--seed", "7")  # fmt: skip
    out = json.loads(done.stdout)
    assert list(out) == ["runs", "comparisons", "comparison_settings"]
    assert out["comparison_settings"] == {
        "resamples": 500,
        "seed": 7,
        "ci": "paired bootstrap percentile",
        "tests": ["paired randomization (sign flip)", "paired bootstrap (shifted to mean 0)"],
        "correction": "holm",
    }
    vectors = {name: single_run_per_query(run_cli, tiny_data, runs, name) for name in RUNS}
    # Recall by hand: a finds 1/2, 1/2, 1 and misses q4 (0); b finds 1, 1/2, 1, 1.
    assert vectors["a.trec"]["recall@10"].tolist() == [0.5, 0.5, 1.0, 0.0]
    assert vectors["b.trec"]["recall@10"].tolist() == [1.0, 0.5, 1.0, 1.0]
    for name in RUNS:  # each run's means are what evaluate says of it alone
        alone = json.loads(evaluate(run_cli, tiny_data, runs, "--run", name, *METRICS, "--json").stdout)
        assert out["runs"][name] == alone
    comparisons = out["comparisons"]
    assert [(c["baseline"], c["run"], c["metric"]) for c in comparisons] == [
        ("a.trec", run, metric) for run in ("b.trec", "c.trec") for metric in ("ndcg@10", "recall@10")
    ]
    for c in comparisons:
        base, run = vectors["a.trec"][c["metric"]], vectors[c["run"]][c["metric"]]
        d = run - base
        assert c["queries"] == 4  # q4, missing from a.trec, counts (as 0)
        assert c["baseline_mean"] == pytest.approx(base.mean(), abs=1e-6)
        assert c["run_mean"] == pytest.approx(run.mean(), abs=1e-6)
        assert c["difference"] == pytest.approx(d.mean(), abs=1e-6)
        assert c["p_randomization"] == pytest.approx(exact_randomization(d), abs=1e-6)  # 2^4 <= 500: exact
        boot = paired_bootstrap(base, run, resamples=500, seed=7)
        assert c["ci95"] == pytest.approx(list(boot.ci95), abs=1e-6)
        assert c["p_bootstrap"] == pytest.approx(boot.p_value, rel=1e-5)
    recall_b = comparisons[1]
    assert recall_b["difference"] == 0.375 and recall_b["p_randomization"] == 0.5  # [.5, 0, 0, 1]: 8 of 16 flips
    for test in ("p_randomization", "p_bootstrap"):
        adjusted = holm([c[test] for c in comparisons])
        assert [c[f"{test}_holm"] for c in comparisons] == pytest.approx(adjusted, rel=1e-5)
    table = done.stderr
    assert "Paired comparisons with a.trec over 4 queries" in table and "Holm over 4 comparisons" in table
    assert "…" not in table
    row = next(line for line in table.splitlines() if line.split()[:2] == ["b.trec", "recall@10"])
    assert row.split()[2:5] == ["0.5000", "0.8750", "+0.3750"]


def test_baseline_named_by_label_or_by_the_same_file(run_cli, tiny_data, runs: Path) -> None:
    for name in ("b.trec", "./b.trec", str(runs / "b.trec")):
        done = evaluate(run_cli, tiny_data, runs, "--run", "a.trec", "--run", "b.trec", "--run", "c.trec",
                        "-M", "recall@10", "--json", "--baseline", name)  # fmt: skip
        comparisons = json.loads(done.stdout)["comparisons"]
        assert [(c["baseline"], c["run"]) for c in comparisons] == [("b.trec", "a.trec"), ("b.trec", "c.trec")]
        assert comparisons[0]["difference"] == -0.375


def test_per_query_with_several_runs(run_cli, tiny_data, runs: Path) -> None:
    """One TSV, the run first on each line; each run's lines are those of its single-run file."""
    evaluate(run_cli, tiny_data, runs, "--run", "a.trec", "--run", "c.trec", *METRICS, "--per-query", "both.tsv")
    lines = (runs / "both.tsv").read_text().splitlines()
    assert len(lines) == 2 * 2 * 4
    for name in ("a.trec", "c.trec"):
        single_run_per_query(run_cli, tiny_data, runs, name)
        alone = (runs / f"{name}.tsv").read_text().splitlines()
        assert [line.split("\t", 1)[1] for line in lines if line.startswith(f"{name}\t")] == alone
        assert all(len(line.split("\t")) == 3 for line in alone)


def test_a_single_run_prints_what_it_always_did(run_cli, tiny_data, runs: Path) -> None:
    done = evaluate(run_cli, tiny_data, runs, "--run", "a.trec", "-M", "recall@10", "--json")
    assert done.stdout.decode() == '{"recall@10": 0.5}\n'
    assert "Paired" not in done.stderr
    assert done.stderr.splitlines()[:2] == [
        "simlm: warning: 1 of 4 judged queries are not in the run; they score 0",
        "a.trec: 4 judged queries, 1 missing from the run",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run", "a.trec", "--run", "b.trec", "--baseline", "z.trec"], "--baseline 'z.trec' is not one of the runs"),
        (["--run", "a.trec", "--baseline", "a.trec"], "--baseline needs two or more --run"),
        (["--run", "a.trec", "--run", "a.trec"], "--run 'a.trec' is given twice"),
        (["--run", "./a.trec", "--run", "a.trec"], "--run 'a.trec' is given twice"),  # one file by two names
        (["--run", "a.trec", "--run", "b.trec", "--resamples", "0"], "--resamples"),
    ],
)
def test_bad_comparisons_fail_in_one_line(run_cli, tiny_data, runs: Path, args: list[str], message: str) -> None:
    done = run_cli(["evaluate", "--qrels", tiny_data.qrels, *args, "--per-query", "out.tsv"], cwd=runs)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (runs / "out.tsv").exists()


def test_the_table_marks_what_both_tests_find_after_holm() -> None:
    from simlm_cli.console import console

    def row(run: str, rand: float, boot: float) -> Comparison:
        return Comparison("runs/bm25.trec", run, "ndcg@10", 300, 0.6789, 0.7, 0.0211, (0.005, 0.037), rand, boot,
                          rand, boot)  # fmt: skip

    long = "runs/a-rather-long-directory-name/retriever2_bm25_fused.trec"
    with console.capture() as captured:
        render_comparisons([row(long, 0.001, 0.002), row("x.trec", 0.001, 0.06), row("y.trec", 0.2, 0.01)], 10_000, 42)
    lines = captured.get().splitlines()
    assert "…" not in captured.get()  # at its natural width, whatever the terminal's
    marked = {line.split()[0]: line.split()[-1] == "*" for line in lines if "ndcg@10" in line}
    assert marked == {long: True, "x.trec": False, "y.trec": False}
