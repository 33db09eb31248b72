"""`simlm fuse`: RRF and interpolation against hand-computed scores, tuning on training qrels only, runs in
different orders, MS MARCO input and output, and one-line errors for bad input (CLI, exit 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simlm_cli.errors import SimlmError
from simlm_cli.io import files
from simlm_cli.io.runs import iter_aligned, read_run
from simlm_cli.pipeline.fuse import FuseConfig, FuseMethod, Norm, run_fuse, tune_weights
from simlm_cli.pipeline.fusion import grid_points

# Run A (TREC) ranks a > b > c for q1; run B (TREC) ranks c > d for q1. q2: A has e only, B has f only.
RUN_A = {"q1": [("a", 3.0), ("b", 2.0), ("c", 1.0)], "q2": [("e", 7.0)]}
RUN_B = {"q1": [("c", 10.0), ("d", 4.0)], "q2": [("f", 0.5)]}


def write_trec(path: Path, run: dict, order: list[str] | None = None) -> Path:
    lines = [
        f"{qid} Q0 {doc} {rank} {score} hand"
        for qid in order or list(run)
        for rank, (doc, score) in enumerate(run[qid], 1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_msmarco(path: Path, run: dict) -> Path:
    lines = [f"{qid}\t{doc}\t{rank}" for qid, rows in run.items() for rank, (doc, _) in enumerate(rows, 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_qrels(path: Path, judgments: list[tuple[str, str, int]]) -> Path:
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in judgments))
    return path


@pytest.fixture()
def runs(tmp_path: Path) -> list[str]:
    return [str(write_trec(tmp_path / "a.trec", RUN_A)), str(write_trec(tmp_path / "b.trec", RUN_B))]


def fused(tmp_path: Path, runs: list[str], **options) -> dict[str, dict[str, float]]:
    output = tmp_path / "fused.trec"
    run_fuse(FuseConfig(runs=runs, output=str(output), **options))
    return read_run(output).scores


def ranking(scores: dict[str, float]) -> list[str]:
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: -item[1])]


def assert_scores(got: dict[str, float], expected: dict[str, float]) -> None:
    assert got.keys() == expected.keys()
    for doc, value in expected.items():
        assert got[doc] == pytest.approx(value, abs=1e-8), doc


# -- the arithmetic ------------------------------------------------------------------------------------------------
def test_rrf_equal_weights(tmp_path: Path, runs: list[str]) -> None:
    scores = fused(tmp_path, runs)  # rrf, k=60, weights 1
    assert_scores(scores["q1"], {"a": 1 / 61, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 62})
    assert_scores(scores["q2"], {"e": 1 / 61, "f": 1 / 61})
    assert ranking(scores["q1"])[:2] == ["c", "a"]


def test_rrf_weights_and_k(tmp_path: Path, runs: list[str]) -> None:
    scores = fused(tmp_path, runs, weights=[2.0, 1.0], rrf_k=10)
    assert_scores(scores["q1"], {"a": 2 / 11, "b": 2 / 12, "c": 2 / 13 + 1 / 11, "d": 1 / 12})


def test_minmax_interpolation(tmp_path: Path, runs: list[str]) -> None:
    # A: a=1, b=0.5, c=0, d (missing) = A's minimum 0. B: c=1, d=0, a and b (missing) = 0.
    scores = fused(tmp_path, runs, method=FuseMethod.interpolate, weights=[0.7, 0.3])
    assert_scores(scores["q1"], {"a": 0.7, "b": 0.35, "c": 0.3, "d": 0.0})
    # One document per run: no spread, so min-max gives 0 to it (and to the other run's document).
    assert_scores(scores["q2"], {"e": 0.0, "f": 0.0})


def test_zscore_interpolation_fills_missing_with_the_minimum(tmp_path: Path, runs: list[str]) -> None:
    # A: mean 2, population std sqrt(2/3): a=+1.2247, b=0, c=-1.2247 and d (missing) = -1.2247.
    # B: mean 7, std 3: c=+1, d=-1, and a, b (missing) = -1.
    z = 1 / math.sqrt(2 / 3)
    scores = fused(tmp_path, runs, method=FuseMethod.interpolate, norm=Norm.zscore, weights=[0.5, 0.5])
    expected = {"a": 0.5 * z - 0.5, "b": -0.5, "c": -0.5 * z + 0.5, "d": -0.5 * z - 0.5}
    assert_scores(scores["q1"], expected)
    assert ranking(scores["q1"]) == ["a", "c", "b", "d"]


def test_no_normalisation_fills_missing_with_the_raw_minimum(tmp_path: Path, runs: list[str]) -> None:
    scores = fused(tmp_path, runs, method=FuseMethod.interpolate, norm=Norm.none, weights=[1.0, 1.0])
    assert_scores(scores["q1"], {"a": 3 + 4, "b": 2 + 4, "c": 1 + 10, "d": 1 + 4})


def test_depth_cuts_the_fused_run(tmp_path: Path, runs: list[str]) -> None:
    scores = fused(tmp_path, runs, k=2)
    assert list(scores["q1"]) == ["c", "a"]


def test_depth_reads_only_the_top_of_each_run(tmp_path: Path, runs: list[str]) -> None:
    # A cut to a, b: a=1, b=0 and c (now missing) = 0. B: c=1, d=0.
    scores = fused(tmp_path, runs, method=FuseMethod.interpolate, weights=[0.7, 0.3], depth=2)
    assert_scores(scores["q1"], {"a": 0.7, "b": 0.0, "c": 0.3, "d": 0.0})


def test_runs_in_different_orders_fuse_the_same(tmp_path: Path, runs: list[str]) -> None:
    reversed_b = str(write_trec(tmp_path / "b-reversed.trec", RUN_B, order=["q2", "q1"]))
    one = fused(tmp_path, runs, method=FuseMethod.interpolate)
    other = fused(tmp_path, [runs[0], reversed_b], method=FuseMethod.interpolate)
    assert one == other


def test_aligned_runs_come_out_in_their_order(tmp_path: Path) -> None:
    """Runs in the same order: each query comes out as soon as both runs have given its block."""
    many = {f"q{i}": [("a", 1.0), ("b", 0.5)] for i in range(5)}
    paths = [str(write_trec(tmp_path / f"r{n}.trec", many)) for n in range(2)]
    assert [qid for qid, _ in iter_aligned(paths)] == list(many)


def test_query_missing_from_one_run(tmp_path: Path, runs: list[str]) -> None:
    only_a = dict(RUN_A, q3=[("z", 1.0), ("y", 0.0)])
    path = str(write_trec(tmp_path / "a3.trec", only_a))
    scores = fused(tmp_path, [path, runs[1]], method=FuseMethod.interpolate)
    assert_scores(scores["q3"], {"z": 1.0, "y": 0.0})


def test_msmarco_input_scores_are_minus_rank(tmp_path: Path, runs: list[str]) -> None:
    msmarco_b = str(write_msmarco(tmp_path / "b.tsv", RUN_B))
    # B's ranks c=1, d=2 become scores -1, -2: min-max c=1, d=0, as with its TREC scores.
    scores = fused(tmp_path, [runs[0], msmarco_b], method=FuseMethod.interpolate, weights=[0.7, 0.3])
    assert_scores(scores["q1"], {"a": 0.7, "b": 0.35, "c": 0.3, "d": 0.0})
    rrf = fused(tmp_path, [runs[0], msmarco_b])
    assert_scores(rrf["q1"], {"a": 1 / 61, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 62})


def test_msmarco_output_and_tag(tmp_path: Path, runs: list[str]) -> None:
    output = tmp_path / "fused.tsv"
    run_fuse(FuseConfig(runs=runs, output=str(output)))
    assert output.read_text().splitlines()[:2] == ["q1\tc\t1", "q1\ta\t2"]
    trec = tmp_path / "fused.trec"
    run_fuse(FuseConfig(runs=runs, output=str(trec)))
    assert trec.read_text().split("\n")[0].split()[-1] == "simlm-fuse"


# -- tuning ---------------------------------------------------------------------------------------------------------
# Training queries: run A ranks the wrong document first, run B the relevant one; test queries the other way round.
# The wrong documents' ids sort after the relevant ones', so at equal weights (a tie, which trec_eval breaks by
# document id, descending) the wrong one is first too.
TRAIN_A = {"t1": [("z", 1.0), ("y", 0.0)], "t2": [("w", 2.0), ("v", 1.0)]}
TRAIN_B = {"t1": [("y", 1.0), ("z", 0.0)], "t2": [("v", 2.0), ("w", 1.0)]}
TRAIN_QRELS = [("t1", "y", 1), ("t2", "v", 1)]


@pytest.fixture()
def tuning(tmp_path: Path, runs: list[str]) -> dict:
    return {
        "tune_runs": [str(write_trec(tmp_path / "ta.trec", TRAIN_A)), str(write_trec(tmp_path / "tb.trec", TRAIN_B))],
        "tune_on": str(write_qrels(tmp_path / "train.tsv", TRAIN_QRELS)),
    }


def test_grid_points() -> None:
    two = grid_points(2, 0.05)
    assert len(two) == 21 and two[0] == [0.0, 1.0] and two[-1] == [1.0, 0.0] and [0.45, 0.55] in two
    three = grid_points(3, 0.1)
    assert len(three) == 66 and all(sum(w) == pytest.approx(1) for w in three)
    with pytest.raises(SimlmError, match="whole number of steps"):
        grid_points(2, 0.3)


@pytest.mark.parametrize("method", [FuseMethod.interpolate, FuseMethod.rrf])
def test_tuning_picks_the_best_weights_on_the_tuning_qrels(runs: list[str], tuning: dict, method) -> None:
    result = tune_weights(FuseConfig(runs=runs, method=method, **tuning))
    assert result.queries == 2
    assert len(result.grid) == 21
    values = dict((tuple(w), v) for w, v in result.grid)
    assert result.value == max(values.values()) == pytest.approx(1.0)
    assert values[(1.0, 0.0)] < 1.0  # run A alone ranks the wrong document first
    # Every w1 < 0.5 ranks y / v first (nDCG 1); of those ties the one nearest equal weights wins.
    assert result.weights == [0.45, 0.55]


def test_tuning_reads_no_other_qrels(tmp_path: Path, runs: list[str], tuning: dict, monkeypatch) -> None:
    """Only the runs, the training runs and --tune-on are opened; an evaluation qrels file next to them (which
    would favour the other run) is never touched."""
    write_qrels(tmp_path / "test.tsv", [("q1", "a", 1)])
    opened: list[str] = []
    real_open = files.open_binary

    def recording_open(path):
        opened.append(str(path))
        assert Path(path).name != "test.tsv", "the evaluation qrels were opened"
        return real_open(path)

    monkeypatch.setattr(files, "open_binary", recording_open)
    output = tmp_path / "fused.trec"
    summary = run_fuse(FuseConfig(runs=runs, output=str(output), method=FuseMethod.interpolate, **tuning))
    assert set(opened) == {*runs, *tuning["tune_runs"], tuning["tune_on"]}
    assert summary["weights"] == [0.45, 0.55]
    # The tuned weights are applied to the test runs: q1 = 0.45 * A + 0.55 * B (min-max).
    assert_scores(read_run(output).scores["q1"], {"a": 0.45, "b": 0.225, "c": 0.55, "d": 0.0})
    report = json.loads(Path(f"{output}.fuse.json").read_text())
    assert report["weights"] == [0.45, 0.55] and report["tune_on"] == tuning["tune_on"]
    assert len(report["grid"]) == 21 and report["tuning_queries"] == 2


def test_tuning_on_the_fused_runs_themselves(tmp_path: Path, runs: list[str]) -> None:
    """Without --tune-run the runs' own judged queries are the tuning set (unjudged ones are left out)."""
    qrels = str(write_qrels(tmp_path / "q.tsv", [("q1", "d", 1)]))
    report = tmp_path / "report.json"
    config = FuseConfig(runs=runs, output=str(tmp_path / "f.trec"), tune_on=qrels, tune_report=str(report))
    summary = run_fuse(config)
    assert json.loads(report.read_text())["tuning_queries"] == 1
    assert summary["weights"][1] > summary["weights"][0]  # only B retrieves d


def test_tuning_needs_a_judged_query_in_common(tmp_path: Path, runs: list[str]) -> None:
    qrels = str(write_qrels(tmp_path / "other.tsv", [("zz", "a", 1)]))
    with pytest.raises(SimlmError, match="no query judged there"):
        tune_weights(FuseConfig(runs=runs, tune_on=qrels))


# -- errors through the CLI -----------------------------------------------------------------------------------------
def _errors(tmp_path: Path, runs: list[str]) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, the start of the one error line)."""
    bad = {
        "empty": "",
        "malformed": "q1 Q0 a 1 3.0 hand\nq1 Q0 b 2 hand\n",
        "nonfinite": "q1 Q0 a 1 3.0 hand\nq1 Q0 b 2 inf hand\n",
        "scattered": "q1 Q0 a 1 3.0 hand\nq2 Q0 e 1 1.0 hand\nq1 Q0 b 2 2.0 hand\n",
    }
    paths = {}
    for name, text in bad.items():
        paths[name] = tmp_path / f"{name}.trec"
        paths[name].write_text(text)
    train = str(write_qrels(tmp_path / "none.tsv", [("zz", "a", 1)]))
    a, b = runs
    return {
        "missing": ([a, str(tmp_path / "nope.trec")], f"simlm: error: {tmp_path / 'nope.trec'}: "),
        "empty": ([a, str(paths["empty"])], f"simlm: error: {paths['empty']}: empty run"),
        "malformed": ([a, str(paths["malformed"])], f"simlm: error: {paths['malformed']}:2: expected 6 columns"),
        "nonfinite": ([a, str(paths["nonfinite"])], f"simlm: error: {paths['nonfinite']}:2: field 'score'"),
        "scattered": ([a, str(paths["scattered"])], f"simlm: error: {paths['scattered']}:3: query 'q1'"),
        "one-run": ([a], "simlm: error: fuse needs at least 2 runs"),
        "weight-count": ([a, b, "-w", "1"], "simlm: error: 1 --weight values for 2 runs"),
        "negative-weight": ([a, b, "-w", "1", "-w", "-0.5"], "simlm: error: --weight -0.5"),
        "norm-with-rrf": ([a, b, "--norm", "zscore"], "simlm: error: --norm applies to --method interpolate"),
        "tune-run-count": ([a, b, "--tune-on", train, "--tune-run", a], "simlm: error: 1 --tune-run files"),
        "no-common-query": ([a, b, "--tune-on", train], "simlm: error: --tune-on"),
        "bad-metric": ([a, b, "--tune-on", train, "--metric", "foo@3"], "simlm: error: --metric 'foo@3'"),
        "weights-and-tuning": (
            [a, b, "-w", "1", "-w", "1", "--tune-on", train],
            "simlm: error: --weight and --tune-on",
        ),
        "tune-run-alone": ([a, b, "--tune-run", a, "--tune-run", b], "simlm: error: --tune-run needs --tune-on"),
        "all-zero-weights": ([a, b, "-w", "0", "-w", "0"], "simlm: error: every --weight is 0"),
        "grid-step-uneven": ([a, b, "--tune-on", train, "--grid-step", "0.3"], "simlm: error: --grid-step 0.3: 1 must"),
        "grid-too-big": (
            [a, a, b, b, a, "--tune-on", train, "--grid-step", "0.01"],
            "simlm: error: --grid-step 0.01: ",
        ),
    }


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, runs: list[str], run_cli) -> None:
    output = tmp_path / "out" / "fused.trec"
    output.parent.mkdir()
    for name, (args, start) in _errors(tmp_path, runs).items():
        done = run_cli(["fuse", *args, "-o", output])
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (name, done.stderr)
        assert len(lines) == 1 and lines[0].startswith(start), (name, done.stderr)
        assert not any(output.parent.iterdir()), name  # nothing half-written


def test_cli_end_to_end_with_msmarco_input(tmp_path: Path, runs: list[str], run_cli) -> None:
    msmarco_b = write_msmarco(tmp_path / "b.tsv", RUN_B)
    done = run_cli(["fuse", runs[0], msmarco_b, "--method", "interpolate", "-w", "0.7", "-w", "0.3"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "q1 Q0 a 1 0.70000000 simlm-fuse"
    assert "fused 2 runs (interpolate, minmax, weights [0.7, 0.3]): 2 queries -> stdout" in done.stderr


def test_cli_tuning_prints_the_grid_and_writes_the_report(
    tmp_path: Path, runs: list[str], tuning: dict, run_cli
) -> None:
    output = tmp_path / "fused.trec"
    tune_runs = [arg for path in tuning["tune_runs"] for arg in ("--tune-run", path)]
    args = ["fuse", *runs, "--method", "interpolate", "--tune-on", tuning["tune_on"], *tune_runs, "-o", output]
    done = run_cli(args)
    assert done.returncode == 0, done.stderr
    assert "ndcg@10 on 2 tuning queries" in done.stderr and "w1 ta.trec" in done.stderr
    assert "tuned weights [0.45, 0.55]: ndcg@10 1.0000 on 2 queries" in done.stderr
    assert "note: the tuning runs hold up to [2, 2] documents per query, the fused runs up to [3, 2]" in done.stderr
    assert json.loads(Path(f"{output}.fuse.json").read_text())["weights"] == [0.45, 0.55]
