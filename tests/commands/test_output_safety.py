"""An output never replaces an input (issue 21, item 1): each command compares every output path with every input
path (the same file through a symbolic or hard link too; an output directory holding an input; an existing output
inside an input directory) and refuses with one line, exit 2, before any work. Streams (`-`, FIFOs) still work.

The commands run in this process through `simlm_cli.cli.main` (the real entry point: its exit code and stderr),
each refusal coming before any model is loaded or file read, so no case pays a CLI start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from simlm_cli.errors import SimlmError
from simlm_cli.index import DENSE_KIND
from simlm_cli.io.files import check_not_an_input, check_output_file
from tests.conftest import SIMLM, cli_env
from tests.conftest import run_main as simlm

RUN = "q1 Q0 d1 1 2.0 a\nq1 Q0 d2 2 1.0 a\nq2 Q0 d2 1 3.0 a\nq2 Q0 d1 2 0.5 a\n"
RUN_B = "q1 Q0 d2 1 5.0 b\nq1 Q0 d1 2 4.0 b\nq2 Q0 d1 1 1.0 b\nq2 Q0 d2 2 0.1 b\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """The probe's files: a corpus, queries, qrels, two runs and a training file, in a fresh directory."""
    content = {
        "cc.jsonl": "".join(json.dumps({"_id": d, "text": f"passage {d}"}) + "\n" for d in ("d1", "d2")),
        "qq.jsonl": "".join(json.dumps({"_id": q, "text": f"query {q}"}) + "\n" for q in ("q1", "q2")),
        "qrels.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n",
        "in.trec": RUN,
        "rr.trec": RUN,
        "rb.trec": RUN_B,
        "tt.jsonl": json.dumps({"query_id": "q1", "query": "query q1", "positives": ["d1"], "negatives": ["d2"]})
        + "\n",
    }
    for name, text in content.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return {name: tmp_path / name for name in content}


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def refused(monkeypatch, capfd, tmp_path: Path, *args: object, says: str = "refusing to write an output over an input"):
    """The command exits 2 with one error line, and every file in the directory is as it was (no temporary left)."""
    before = snapshot(tmp_path)
    code, err = simlm(monkeypatch, capfd, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("simlm: error: "), (code, err)
    assert says in lines[0], lines[0]
    assert snapshot(tmp_path) == before
    return lines[0]


# -- the probe's cases -----------------------------------------------------------------------------------------
def test_fuse_output_over_one_of_its_runs(files, tmp_path, monkeypatch, capfd) -> None:
    line = refused(monkeypatch, capfd, tmp_path, "fuse", files["in.trec"], files["rb.trec"], "-o", files["in.trec"])
    assert f"{files['in.trec']}: is the input {files['in.trec']}" in line


def test_fuse_tune_report_over_the_tuning_qrels(files, tmp_path, monkeypatch, capfd) -> None:
    args = ["fuse", files["in.trec"], files["rb.trec"], "--tune-on", files["qrels.tsv"], "-o", tmp_path / "f.trec"]
    refused(monkeypatch, capfd, tmp_path, *args, "--tune-report", files["qrels.tsv"])


def test_search_output_over_the_queries(files, tmp_path, monkeypatch, capfd) -> None:
    (tmp_path / "idx").mkdir()
    refused(monkeypatch, capfd, tmp_path, "search", "--index", tmp_path / "idx", "--queries", files["qq.jsonl"],
            "--output", files["qq.jsonl"])  # fmt: skip


def test_search_output_inside_the_index_it_reads(files, tmp_path, monkeypatch, capfd) -> None:
    index = tmp_path / "idx"
    index.mkdir()
    (index / "meta.json").write_text('{"kind": "dense"}')
    args = ["search", "--index", index, "--queries", files["qq.jsonl"], "--output", index / "meta.json"]
    refused(monkeypatch, capfd, tmp_path, *args, says="lies inside the input directory")


def test_mine_output_over_the_run(files, tmp_path, monkeypatch, capfd) -> None:
    refused(monkeypatch, capfd, tmp_path, "mine", "--run", files["rr.trec"], "--queries", files["qq.jsonl"],
            "--qrels", files["qrels.tsv"], "--output", files["rr.trec"])  # fmt: skip


@pytest.mark.parametrize("over", ["rr.trec", "qrels.tsv"])
def test_evaluate_per_query_over_the_run_or_the_qrels(over, files, tmp_path, monkeypatch, capfd) -> None:
    refused(monkeypatch, capfd, tmp_path, "evaluate", "--run", files["rr.trec"], "--qrels", files["qrels.tsv"],
            "--per-query", files[over])  # fmt: skip


def test_evaluate_per_query_over_the_second_of_several_runs(files, tmp_path, monkeypatch, capfd) -> None:
    refused(monkeypatch, capfd, tmp_path, "evaluate", "--run", files["rr.trec"], "--run", files["rb.trec"],
            "--qrels", files["qrels.tsv"], "--per-query", files["rb.trec"])  # fmt: skip


def test_encode_output_over_the_corpus(files, tmp_path, monkeypatch, capfd, tiny_bert_dir) -> None:
    refused(monkeypatch, capfd, tmp_path, "encode", "--model", tiny_bert_dir, "--corpus", files["cc.jsonl"],
            "--output", files["cc.jsonl"])  # fmt: skip


def test_rerank_run_output_over_the_run(files, tmp_path, monkeypatch, capfd, tiny_bert_dir) -> None:
    refused(monkeypatch, capfd, tmp_path, "rerank", "run", "--model", tiny_bert_dir, "--run", files["rr.trec"],
            "--queries", files["qq.jsonl"], "--corpus", files["cc.jsonl"], "--output", files["rr.trec"])  # fmt: skip


def test_rerank_score_output_over_the_training_file(files, tmp_path, monkeypatch, capfd, tiny_bert_dir) -> None:
    refused(monkeypatch, capfd, tmp_path, "rerank", "score", "--model", tiny_bert_dir, "--train-file",
            files["tt.jsonl"], "--corpus", files["cc.jsonl"], "--output", files["tt.jsonl"])  # fmt: skip


def test_index_output_directory_holding_its_input(tmp_path, monkeypatch, capfd) -> None:
    """An earlier index (replaced whole by a new build) holding the stream the new one reads."""
    index = tmp_path / "idx"
    index.mkdir()
    (index / "meta.json").write_text(json.dumps({"kind": DENSE_KIND}))  # simlm's: replaceable, but for the input
    (index / "corpus.emb").write_bytes(b"not read")
    line = refused(monkeypatch, capfd, tmp_path, "index", index / "corpus.emb", "--output", index)
    assert f"{index}: holds the input {index / 'corpus.emb'}" in line


def test_a_symbolic_link_to_an_input(files, tmp_path, monkeypatch, capfd) -> None:
    link = tmp_path / "link.trec"
    link.symlink_to(files["in.trec"])
    refused(monkeypatch, capfd, tmp_path, "fuse", files["in.trec"], files["rb.trec"], "-o", link)
    # and the other way round: the input named through a link, the output by its own name
    refused(monkeypatch, capfd, tmp_path, "fuse", link, files["rb.trec"], "-o", files["in.trec"])


def test_a_hard_link_to_an_input(files, tmp_path, monkeypatch, capfd) -> None:
    twin = tmp_path / "twin.jsonl"
    os.link(files["qq.jsonl"], twin)
    (tmp_path / "idx").mkdir()
    refused(monkeypatch, capfd, tmp_path, "search", "--index", tmp_path / "idx", "--queries", files["qq.jsonl"],
            "--output", twin)  # fmt: skip


# -- what must keep working ------------------------------------------------------------------------------------
def test_distinct_outputs_are_written(files, tmp_path, monkeypatch, capfd) -> None:
    code, err = simlm(monkeypatch, capfd, "fuse", files["in.trec"], files["rb.trec"], "-o", tmp_path / "f.trec")
    assert code == 0, err
    assert (tmp_path / "f.trec").read_text().startswith("q1 Q0 ")
    code, err = simlm(monkeypatch, capfd, "evaluate", "--run", files["rr.trec"], "--qrels", files["qrels.tsv"],
                      "--per-query", tmp_path / "pq.tsv")  # fmt: skip
    assert code == 0 and (tmp_path / "pq.tsv").read_text(), err


def test_a_fifo_input_and_stdout_still_work(files, tmp_path) -> None:
    """A run read from a FIFO (`<(...)`), the fused run to stdout (`-` and no -o alike): nothing to compare."""
    fifo = tmp_path / "run.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(RUN_B))
    writer.start()
    done = subprocess.run([*SIMLM, "fuse", str(files["in.trec"]), str(fifo)], capture_output=True, env=cli_env(),
                          timeout=120)  # fmt: skip
    writer.join(10)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("q1 Q0 ")
    assert files["in.trec"].read_text() == RUN


def test_check_not_an_input_passes_streams_and_new_files(files, tmp_path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    for output in (None, "-", fifo, tmp_path / "new.trec", "/dev/stdout"):
        check_not_an_input(output, [files["rr.trec"], "-", fifo, None, "bert-base-uncased"])
    check_output_file(tmp_path / "new.trec", [files["rr.trec"]])
    with pytest.raises(SimlmError, match="is the input"):
        check_output_file(files["rr.trec"], [fifo, files["rr.trec"]])
    with pytest.raises(SimlmError, match="holds the input"):
        check_not_an_input(tmp_path, [files["rr.trec"]], directory=True)
    check_not_an_input(tmp_path / "sub", [files["rr.trec"]], directory=True)  # a new directory holds nothing
