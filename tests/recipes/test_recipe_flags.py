"""Every recipe checks every flag before its first stage: a bad value is one line naming the flag, exit 2, and no
stage has run (the output directory is not even created). Fast: the checks come before any simlm command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "simlm_cli" / "data" / "scifact"


def run(recipe: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "recipes" / recipe), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
        timeout=60, env={"PATH": "/usr/bin:/bin"},  # no simlm on PATH: a check that came too late fails loudly
    )  # fmt: skip


def check_refused(done: subprocess.CompletedProcess, flag: str, out: Path) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and flag in lines[0] and "error" in lines[0], done.stderr
    assert "unbound variable" not in done.stderr
    assert not out.exists()


BEIR_BAD = [
    ("--epochs", "abc"), ("--epochs", "0"), ("--epochs", "1.5"), ("--lr", "0"), ("--lr", "fast"), ("--lr", "-1e-5"),
    ("--negatives", "0"), ("--rerank-depth", "-1"), ("--distill-epochs", "x"), ("--r2-init", "r3"),
    ("--seeds", "42 forty"), ("--seeds", "42 42"), ("--seeds", " "), ("--dev-fraction", "1"),
    ("--dev-fraction", "0"), ("--dev-fraction", "a"), ("--precision", "int4"), ("--stop-after", "bm25"),
    ("--lr", "2e-5 fast"), ("--lr", "2e-5 2e-5"), ("--rank-range", "0:200"), ("--rank-range", "5:3"),
    ("--rank-range", "1:200 top"), ("--rank-range", "1-200"), ("--rank-range", "1:200 1:200"),
]  # fmt: skip


@pytest.mark.parametrize(("flag", "value"), BEIR_BAD)
def test_beir_refuses_a_bad_value_before_any_stage(tmp_path: Path, flag: str, value: str) -> None:
    out = tmp_path / "out"
    check_refused(run("beir.sh", "--data", SCIFACT, "--output", out, flag, value), flag, out)


@pytest.mark.parametrize("flag", ["--data", "--output", "--epochs", "--seeds", "--precision"])
def test_beir_flag_without_its_value_is_one_line(tmp_path: Path, flag: str) -> None:
    out = tmp_path / "out"
    args = ["--data", SCIFACT, "--output", out] if flag not in ("--data", "--output") else []
    done = run("beir.sh", *args, flag)
    check_refused(done, flag, out)
    assert "expected a value" in done.stderr
    # a flag followed by another flag has no value either
    done = run("beir.sh", *args, flag, "--dry-run")
    check_refused(done, flag, out)


def test_beir_output_that_is_a_file_and_scifact_passes_flags_on(tmp_path: Path) -> None:
    afile = tmp_path / "results"
    afile.write_text("mine\n")
    done = run("beir.sh", "--data", SCIFACT, "--output", afile)
    assert done.returncode == 2 and "--output" in done.stderr and afile.read_text() == "mine\n"
    check_refused(run("scifact.sh", "--epochs", "abc"), "--epochs", ROOT / "out" / "scifact-pipeline-never")


@pytest.mark.parametrize(
    ("recipe", "args", "flag"),
    [("msmarco.sh", ["--gpus", "0"], "--gpus"), ("msmarco.sh", ["--data"], "--data"),
     ("msmarco.sh", ["--bm25-run", "no-such-run.trec"], "--bm25-run"), ("nq.sh", ["--split"], "--split"),
     ("nq.sh", ["--model"], "--model")],
)  # fmt: skip
def test_paper_recipes_refuse_a_bad_value(tmp_path: Path, recipe: str, args: list[str], flag: str) -> None:
    out = tmp_path / "out"
    done = run(recipe, "--dry-run", "--output", out, *args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and flag in lines[0], done.stderr
    assert "unbound variable" not in done.stderr and not out.exists()


def test_beir_refuses_dev_qrels_that_share_queries_with_train(tmp_path: Path) -> None:
    """A collection's own qrels/dev.tsv is the dev split only if none of its queries is a train query."""
    data = tmp_path / "data"
    (data / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (data / name).write_text("{}\n")
    header = "query-id\tcorpus-id\tscore\n"
    (data / "qrels" / "train.tsv").write_text(header + "q1\td1\t1\nq2\td2\t1\n")
    (data / "qrels" / "test.tsv").write_text(header + "q3\td3\t1\n")
    (data / "qrels" / "dev.tsv").write_text(header + "q2\td2\t1\n")
    done = subprocess.run(
        ["bash", str(ROOT / "recipes" / "beir.sh"), "--data", str(data), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SIMLM_NO_SETUP": "1"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "dev.tsv: 1 of its queries are train queries too (e.g. q2)" in done.stderr
    assert not list((tmp_path / "out").glob("runs/*"))  # no stage ran
