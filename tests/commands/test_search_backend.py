"""`simlm search` and `simlm mine --index` with `--search-backend torch` on the CPU: the same runs and training
files as faiss's, and one-line refusals for what the torch backend does not search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .test_encode_index_search import ok, ranking, read_trec
from .test_index_parts import refused

CPU = ["--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="module")
def backends(dense, cli_jobs, tmp_path_factory):
    work = tmp_path_factory.mktemp("backends")
    data = dense.data
    judged = ["--queries", data.queries, "--qrels", data.qrels, *CPU]
    flat, hnsw = dense.work / "idx-file", dense.work / "idx-hnsw"
    mine = ["mine", "--queries", data.queries, "--qrels", data.qrels, "--depth", "12", *CPU, "--index", flat]
    commands = {
        "faiss": ["search", "--index", flat, *judged, "--search-backend", "faiss", "-o", work / "faiss.trec"],
        "torch": ["search", "--index", flat, *judged, "--search-backend", "torch", "--search-shard-rows", "5",
                  "-k", "8", "-o", work / "torch.trec"],
        "faiss-8": ["search", "--index", flat, *judged, "-k", "8", "-o", work / "faiss8.trec"],
        "torch-hnsw": ["search", "--index", hnsw, *judged, "--search-backend", "torch"],
        "rows-faiss": ["search", "--index", flat, *judged, "--search-shard-rows", "5"],
        "mine-faiss": [*mine, "-o", work / "mine-faiss.jsonl"],
        "mine-torch": [*mine, "--search-backend", "torch", "--search-shard-rows", "3", "-o", work / "mine-torch.jsonl"],
    }  # fmt: skip
    started = {name: cli_jobs.run(args) for name, args in commands.items()}
    return work, {name: job.result() for name, job in started.items()}


def test_search_with_torch_writes_faiss_run(backends) -> None:
    work, done = backends
    for name in ("faiss", "torch", "faiss-8"):
        ok(done[name])
    assert "searching with torch on cpu, exact, 3 shard(s) of <= 5 rows" in done["torch"].stderr
    torch_run, faiss_run = read_trec(work / "torch.trec"), read_trec(work / "faiss8.trec")
    assert ranking(torch_run) == ranking(faiss_run) and len(torch_run) == 4
    for qid, rows in torch_run.items():  # k 8 over shards of 5 rows (k above a shard)
        assert len(rows) == 8
        np.testing.assert_allclose([s for *_, s in rows], [s for *_, s in faiss_run[qid]], atol=2e-6)
    # the first 8 of the top 1000 (all 12 documents) are the same
    assert {q: ids[:8] for q, ids in ranking(read_trec(work / "faiss.trec")).items()} == ranking(faiss_run)


def test_mine_with_torch_mines_what_faiss_mines(backends) -> None:
    work, done = backends
    ok(done["mine-faiss"])
    ok(done["mine-torch"])
    lines = {name: [json.loads(x) for x in (work / f"{name}.jsonl").read_text().splitlines()] for name in ("mine-faiss", "mine-torch")}  # fmt: skip
    for a, b in zip(lines["mine-faiss"], lines["mine-torch"], strict=True):
        assert [n["docid"] for n in a["negatives"]] == [n["docid"] for n in b["negatives"]]
        np.testing.assert_allclose(
            [n["score"] for n in a["negatives"]], [n["score"] for n in b["negatives"]], atol=2e-6
        )


def test_what_torch_cannot_search_is_refused(backends) -> None:
    _, done = backends
    refused(done["torch-hnsw"], "--search-backend torch searches flat (exact) indexes", "idx-hnsw is hnsw")
    refused(done["rows-faiss"], "--search-shard-rows applies to --search-backend torch")
