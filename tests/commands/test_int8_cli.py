"""`--precision int8` through the real CLI: encode | index | search, what the stream and the index record, and
every refusal (a CUDA device, a training command, SIMLM_PRECISION=int8) as one error line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import SIMLM, cli_env

TRAINING = {
    "train": ["train"],
    "distill": ["distill"],
    "pretrain": ["pretrain"],
    "rerank-train": ["rerank", "train"],
}


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def run_with_env(args: list, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run([*SIMLM, *map(str, args)], capture_output=True, text=True, env=cli_env() | env, timeout=300)
    return done


@pytest.fixture(scope="module")
def int8_runs(tmp_path_factory, tiny_bert_dir, tiny_data, cli_jobs) -> SimpleNamespace:
    work = tmp_path_factory.mktemp("int8")
    data = tiny_data
    encode = ["encode", "--model", tiny_bert_dir, "--corpus", data.corpus, "--device", "cpu"]
    jobs = {
        "pipe": cli_jobs.pipe([*encode, "--precision", "int8"], ["index", "--output", work / "idx-int8"]),
        "fp32": cli_jobs.pipe([*encode, "--precision", "fp32"], ["index", "--output", work / "idx-fp32"]),
        "file": cli_jobs.run([*encode, "--precision", "int8", "--output", work / "int8.emb"]),
        "cuda": cli_jobs.run([*encode, "--precision", "int8", "--device", "cuda", "--output", work / "x.emb"]),
        "rerank-cuda": cli_jobs.run(
            [
                "rerank",
                "run",
                "--model",
                tiny_bert_dir,
                "--run",
                work / "r.trec",
                "--queries",
                data.queries,
                "--corpus",
                data.corpus,
                "--output",
                work / "rr.trec",
                "--precision",
                "int8",
                "--device",
                "cuda",
            ]
        ),  # fmt: skip
    }
    for name, command in TRAINING.items():
        jobs[name] = cli_jobs.run([*command, "--precision", "int8", "--model", tiny_bert_dir])
    done = {}
    done["encode"], done["index"] = jobs.pop("pipe").result()
    done["encode-fp32"], done["index-fp32"] = jobs.pop("fp32").result()
    done |= {name: job.result() for name, job in jobs.items()}
    judged = ["--queries", data.queries, "--qrels", data.qrels, "--device", "cpu"]
    searches = {
        "search-fp32": ["search", "--index", work / "idx-int8", *judged, "--precision", "fp32"],
        "search-int8": ["search", "--index", work / "idx-int8", *judged, "--precision", "int8"],
        "search-reference": ["search", "--index", work / "idx-fp32", *judged, "--precision", "fp32"],
    }
    started = {name: cli_jobs.run(args) for name, args in searches.items()}
    done |= {name: job.result() for name, job in started.items()}
    return SimpleNamespace(work=work, done=done)


def error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_encode_int8_into_index_records_the_precision(int8_runs, read_stream) -> None:
    for name in ("encode", "index", "encode-fp32", "index-fp32", "file"):
        ok(int8_runs.done[name])
    assert "cpu, int8" in int8_runs.done["encode"].stderr
    meta = json.loads((int8_runs.work / "idx-int8" / "meta.json").read_text())
    assert meta["precision"] == "int8" and meta["backend"] == "openvino"
    assert json.loads((int8_runs.work / "idx-fp32" / "meta.json").read_text())["precision"] == "fp32"
    header, ids, vectors = read_stream(int8_runs.work / "int8.emb")
    assert header.precision == "int8" and header.backend == "openvino" and header.dtype == "float32"
    assert len(ids) == 12
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_search_of_an_int8_index_uses_the_asked_precision_for_queries(int8_runs) -> None:
    fp32 = ok(int8_runs.done["search-fp32"])
    # no silent switch to the index's int8 (the suite's SIMLM_BACKEND=torch for the fp32 queries); a warning says so
    assert "cpu, fp32, torch (the index's passages: int8, openvino)" in fp32.stderr
    assert "--precision int8 --backend openvino encodes them alike" in fp32.stderr
    int8 = ok(int8_runs.done["search-int8"])
    assert "cpu, int8, openvino (the index's passages: int8, openvino)" in int8.stderr
    assert "encodes them alike" not in int8.stderr
    reference = ok(int8_runs.done["search-reference"])

    def top(done: subprocess.CompletedProcess) -> dict[str, str]:
        first = {}
        for line in done.stdout.decode().splitlines():
            qid, _, docid, rank, _, _ = line.split()
            if rank == "1":
                first[qid] = docid
        return first

    assert len(top(reference)) == 4
    # the tiny random model's rankings are nearly ties; most of the top-1 documents still agree with fp32's
    assert sum(top(int8)[q] == d for q, d in top(reference).items()) >= 3


def test_int8_with_a_cuda_device_is_refused(int8_runs) -> None:
    for name in ("cuda", "rerank-cuda"):
        line = error_line(int8_runs.done[name])
        assert "--precision int8 runs on the CPU" in line and "--device cuda" in line, line
    assert not (int8_runs.work / "x.emb").exists()


@pytest.mark.parametrize("name", list(TRAINING))
def test_training_commands_do_not_take_int8(int8_runs, name: str) -> None:
    done = int8_runs.done[name]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "'int8' is not one of" in done.stderr and "--precision" in done.stderr, done.stderr


def test_simlm_precision_int8_is_refused(tiny_bert_dir, tiny_data, tmp_path: Path) -> None:
    done = run_with_env(
        ["encode", "--model", tiny_bert_dir, "--corpus", tiny_data.corpus, "--output", tmp_path / "x.emb"],
        {"SIMLM_PRECISION": "int8"},
    )
    assert "SIMLM_PRECISION=int8: int8 is never chosen for `auto`" in error_line(done)
    assert not (tmp_path / "x.emb").exists()
