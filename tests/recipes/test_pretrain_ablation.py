"""recipes/pretrain_ablation.sh (issue 24): its flags, and one --dry-run of the whole design as the GPU plan runs it
(recipes/gpu/pretrain_ablation_gpu.sh): --stop-after models, recipes/gpu/dense_runs.py over every model, then
--from-runs. The commands it logged are checked for the design's promises: every row starts from the one
head-fitted checkpoint, rlm pretrains with that run's generator, every fine-tuning has the same settings with
--pooling cls, and only reported figures read the test qrels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.recipes.test_recipe_flags import check_refused, run
from tests.recipes.test_recipes import flag_values, logged_commands, qids

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "simlm_cli" / "data" / "scifact"
INIT = "sentence-transformers/all-MiniLM-L6-v2"

BAD = [
    ("--rows", "mlm rlm"), ("--rows", "none bert"), ("--rows", "none none"), ("--rows", " "), ("--seeds", "1 x"),
    ("--seeds", "1 1"), ("--steps", "0"), ("--batch-size", "b"), ("--max-length", "4"), ("--lr", "0"),
    ("--warmup", "1"), ("--warmup", "0"), ("--head-steps", "0"), ("--head-lr", "fast"), ("--generator-steps", "-1"),
    ("--precision", "int8"), ("--ft-epochs", "0"), ("--parallel", "0"), ("--preset", "tpu"),
    ("--negatives-file", "no-such.jsonl"), ("--stop-after", "bm25"), ("--ft-epochs", None), ("--preset", None),
]  # fmt: skip


@pytest.mark.parametrize(("flag", "value"), BAD)
def test_pretrain_ablation_refuses_a_bad_value_before_any_stage(tmp_path: Path, flag: str, value: str | None) -> None:
    out = tmp_path / "out"
    check_refused(
        run("pretrain_ablation.sh", "--output", out, flag, *([value] if value is not None else [])), flag, out
    )


def test_from_runs_only_evaluates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    check_refused(run("pretrain_ablation.sh", "--output", out, "--from-runs", "--stop-after", "models"), "--from-runs",
                  out)  # fmt: skip


def env() -> dict[str, str]:
    return os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                         "SIMLM_NO_SETUP": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip


def recipe(out: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", str(ROOT / "recipes" / "pretrain_ablation.sh"), "--output", str(out), *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, env=env(), timeout=3600,  # starved on a shared 2-core machine
    )  # fmt: skip
    assert not check or done.returncode == 0, done.stderr[-4000:]
    return done


def negatives_file(path: Path, qrels: Path, count: int = 12) -> Path:
    """A training file of `count` queries of `qrels` (positives from it, negatives any other passages), as `simlm
    mine` writes one: the BM25 negatives the GPU plan carries, without Java here."""
    queries = {json.loads(ln)["_id"]: json.loads(ln)["text"] for ln in (SCIFACT / "queries.jsonl").open()}
    judged: dict[str, list[str]] = {}
    for line in qrels.read_text().splitlines()[1:]:
        qid, docid, _ = line.split("\t")
        judged.setdefault(qid, []).append(docid)
    docids = [json.loads(ln)["_id"] for _, ln in zip(range(40), (SCIFACT / "corpus.jsonl").open())]
    lines = [
        json.dumps({"qid": q, "query": queries[q], "positives": [{"docid": d, "score": None} for d in judged[q]],
                    "negatives": [{"docid": d, "score": None} for d in docids if d not in judged[q]]})
        for q in sorted(judged)[:count]
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def split_fit_dev(tmp_path: Path) -> tuple[Path, Path]:
    fit, dev = tmp_path / "fit.tsv", tmp_path / "dev.tsv"
    subprocess.run([sys.executable, str(ROOT / "recipes" / "split_qrels.py"), str(SCIFACT / "qrels" / "train.tsv"),
                    "--fit", str(fit), "--dev", str(dev)], check=True, capture_output=True)  # fmt: skip
    return fit, dev


def test_negatives_of_a_dev_query_are_refused(tmp_path: Path) -> None:
    """--negatives-file must hold fit queries only (the split is the recipe's own, by a hash of the query id)."""
    _, dev = split_fit_dev(tmp_path)
    bad = negatives_file(tmp_path / "bad.jsonl", dev, count=1)
    done = recipe(tmp_path / "out", "--negatives-file", bad, "--dry-run", check=False)
    assert done.returncode == 2 and "is not a fit query of" in done.stderr and "bad.jsonl:1" in done.stderr
    assert not list((tmp_path / "out" / "models").iterdir())  # no stage ran


def without(argv: list[str], *flags: str) -> list[str]:
    """argv less each of `flags` and its value."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        else:
            kept.append(arg)
    return kept


@pytest.mark.slow
def test_pretrain_ablation_dry_run_as_the_gpu_plan_runs_it(tmp_path: Path) -> None:
    fit, _ = split_fit_dev(tmp_path)
    negatives = negatives_file(tmp_path / "bm25.jsonl", fit)
    out = tmp_path / "abl"
    flags = ["--preset", "cpu-tiny", "--seeds", "1 2", "--dry-run"]
    recipe(out, *flags, "--negatives-file", negatives, "--stop-after", "models")
    assert not list((out / "runs").iterdir())  # --stop-after models: no retrieval
    models = out / "models"
    pairs = [f"zeroshot-none={models / 'head'}"]
    pairs += [f"zeroshot-{row}-{s}={models / f'pretrain-{row}-{s}'}" for row in ("mlm", "rlm") for s in (1, 2)]
    pairs += [f"{row}-{s}={models / f'ft-{row}-{s}'}" for row in ("none", "mlm", "rlm") for s in (1, 2)]
    test_qrels, dev_qrels = SCIFACT / "qrels" / "test.tsv", out / "qrels" / "dev.tsv"
    dense_runs = [sys.executable, str(ROOT / "recipes" / "gpu" / "dense_runs.py"), "--corpus", SCIFACT / "corpus.jsonl",
                  "--queries", SCIFACT / "queries.jsonl", "--split", f"test={test_qrels}", "--split", f"dev={dev_qrels}",
                  "--output", out / "runs", "--k", "20", "--device", "cpu", "--dry-run", *pairs]  # fmt: skip
    subprocess.run(list(map(str, dense_runs)), check=True, cwd=ROOT, env=env(), capture_output=True, timeout=1200)
    recipe(out, *flags, "--from-runs")

    commands = logged_commands(out)
    pretrains = {flag_values(a, "--output")[0]: a for _, a in commands if a[1] == "pretrain"}
    head, generator = str(models / "head"), str(models / "generator")
    assert flag_values(pretrains[head], "--model") == [INIT] and flag_values(pretrains[head], "--objective") == ["mlm"]
    assert flag_values(pretrains[head], "--train-only") == ["head"]
    assert flag_values(pretrains[generator], "--model") == [head] and "--train-only" not in pretrains[generator]
    rows = {k: a for k, a in pretrains.items() if k not in (head, generator)}
    assert sorted(Path(k).name for k in rows) == [f"pretrain-{r}-{s}" for r in ("mlm", "rlm") for s in (1, 2)]
    for output, argv in rows.items():  # every row's pretraining starts from the head-fitted checkpoint
        assert flag_values(argv, "--model") == [head], argv
        expected = [generator] if flag_values(argv, "--objective") == ["rlm"] else []
        assert flag_values(argv, "--generator") == expected, argv
        assert flag_values(argv, "--seed") == [output.rsplit("-", 1)[1]]
    # the budget is the same for every objective
    assert len({tuple(without(a, "--objective", "--output", "--seed", "--generator")) for a in rows.values()}) == 1
    trains = [a for _, a in commands if a[1] == "train"]
    assert len(trains) == 6
    for argv in trains:
        name = Path(flag_values(argv, "--output")[0]).name.removeprefix("ft-")
        start = head if name.startswith("none-") else str(models / f"pretrain-{name}")
        assert flag_values(argv, "--model") == [start] and flag_values(argv, "--pooling") == ["cls"], argv
        assert flag_values(argv, "--train-file") == [str(negatives)]
    assert len({tuple(without(a, "--model", "--output", "--seed")) for a in trains}) == 1  # identical settings
    # nothing is tuned or selected; only reported figures read the test qrels
    test_qrels = str(SCIFACT / "qrels" / "test.tsv")
    assert {p for p, _ in commands} == {"run", "report"}
    assert all(p == "report" for p, a in commands if test_qrels in a)
    trained = {json.loads(ln)["qid"] for ln in negatives.read_text().splitlines()}
    assert not trained & (qids(SCIFACT / "qrels" / "test.tsv") | qids(out / "qrels" / "dev.tsv"))

    results = json.loads((out / "results.json").read_text())
    by_row = {r["row"]: r for r in results["rows"]}
    assert list(by_row) == ["none", "mlm", "rlm"] and all(len(r["seeds"]) == 2 for r in by_row.values())
    for row in by_row.values():
        for key in ("ndcg@10", "dev", "zeroshot", "zeroshot_dev"):
            assert 0.0 <= row[key] <= 1.0, (row["row"], key, row[key])
        for seed in row["seeds"]:
            for base in ("none", "mlm"):
                c = seed["vs"][base]
                assert (c is None) == (row["row"] == base), (row["row"], base, c)
                if c:  # the paired difference of this row's seed against the baseline's same seed
                    assert Path(c["baseline"]).name == f"{base}-{seed['seed']}.trec"
                    assert c["ci95"][0] <= c["difference"] <= c["ci95"][1]
                    assert abs(c["run_mean"] - seed["test"]["ndcg@10"]) < 1e-9
    assert 0.0 < by_row["rlm"]["replaced"] <= 1.0 and by_row["mlm"]["replaced"] is None
    assert by_row["none"]["zeroshot_sd"] is None  # one start for every seed
    table = (out / "results.md").read_text()
    assert "| rlm | 2 |" in table and "vs mlm (test, per seed)" in table
    assert (out / "losses.png").read_bytes()[:4] == b"\x89PNG"


def test_dense_runs_rank_as_simlm_search_does(
    tmp_path: Path, tiny_data, tiny_bert_dir: Path, run_cli, run_pipe
) -> None:
    """recipes/gpu/dense_runs.py (one process, torch search, no faiss) writes the run `simlm encode | simlm index`
    then `simlm search` writes for the same model and encoding flags: same documents in the same order."""
    flags = [
        "--pooling",
        "cls",
        "--passage-format",
        "concat",
        "--query-max-length",
        "32",
        "--passage-max-length",
        "144",
    ]
    index = tmp_path / "idx"
    encoded, indexed = run_pipe(["encode", "--model", tiny_bert_dir, "--corpus", tiny_data.corpus, *flags,
                                 "--device", "cpu", "--precision", "fp32"], ["index", "--output", index])  # fmt: skip
    assert encoded.returncode == 0 and indexed.returncode == 0, encoded.stderr + indexed.stderr
    expected = tmp_path / "search.trec"
    done = run_cli(["search", "--index", index, "--queries", tiny_data.queries, "--qrels", tiny_data.qrels, "--k", "5",
                    "--output", expected, "--device", "cpu", "--precision", "fp32"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    subprocess.run([sys.executable, str(ROOT / "recipes" / "gpu" / "dense_runs.py"), "--corpus", str(tiny_data.corpus),
                    "--queries", str(tiny_data.queries), "--split", f"test={tiny_data.qrels}", "--output",
                    str(tmp_path / "runs"), "--k", "5", "--device", "cpu", "--precision", "fp32",
                    f"tiny={tiny_bert_dir}"], check=True, cwd=ROOT, env=env(), capture_output=True)  # fmt: skip

    def ranked(path: Path) -> dict[str, list[tuple[str, float]]]:
        rows: dict[str, list[tuple[str, float]]] = {}
        for line in path.read_text().splitlines():
            qid, _, docid, rank, score, _ = line.split()
            rows.setdefault(qid, []).append((docid, float(score)))
        return rows

    ours, theirs = ranked(tmp_path / "runs" / "tiny.trec"), ranked(expected)
    assert ours.keys() == theirs.keys() == {q for q, _, _ in tiny_data.judgments}
    for qid, docs in theirs.items():
        assert [d for d, _ in ours[qid]] == [d for d, _ in docs], qid
        assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(ours[qid], docs)), qid
