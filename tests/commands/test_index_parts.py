"""Dense indexes built in parts (`simlm index --partial`) and searched together (`--index A --index B`).

The parts are the tiny corpus's two encode shards (from the session fixture `dense`); the whole is the flat
index `simlm index shards/` built from both at once.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from simlm_cli.index import BM25_KIND, META_FILE

from .test_encode_index_search import ok, ranking, read_trec


@pytest.fixture(scope="module")
def parts(dense, cli_jobs, tmp_path_factory):
    """Two one-shard indexes, and what the CLI did with them."""
    work = tmp_path_factory.mktemp("parts")
    shards = sorted((dense.work / "shards").iterdir())
    built = {i: cli_jobs.run(["index", shard, "--partial", "--output", work / f"part{i}"]) for i, shard in enumerate(shards)}  # fmt: skip
    built["no-partial"] = cli_jobs.run(["index", shards[0], "--output", work / "refused"])
    built["whole-partial"] = cli_jobs.run(["index", dense.work / "tiny.emb", "--partial", "--output", work / "w"])
    done = {name: job.result() for name, job in built.items()}
    ok(done[0])
    ok(done[1])
    judged = ["--queries", dense.data.queries, "--qrels", dense.data.qrels, "--device", "cpu", "--precision", "fp32"]
    bm25 = work / "bm25"
    bm25.mkdir()
    (bm25 / META_FILE).write_text(json.dumps({"kind": BM25_KIND}))  # only its kind is read before the refusal
    mine = ["mine", "--queries", dense.data.queries, "--qrels", dense.data.qrels, "--depth", "12", "--device", "cpu",
            "--precision", "fp32"]  # fmt: skip
    commands = {
        "merged": ["search", "--index", work / "part0", "--index", work / "part1", *judged, "-o", work / "run.trec"],
        "incomplete": ["search", "--index", work / "part1", *judged],
        "twice": ["search", "--index", work / "part0", "--index", work / "part0", "--index", work / "part1", *judged],
        "duplicate-ids": ["search", "--index", dense.work / "idx-file", "--index", dense.work / "idx-pipe", *judged],
        "bm25": ["search", "--index", bm25, "--index", work / "part0", *judged],
        "mine-merged": [*mine, "--index", work / "part0", "--index", work / "part1", "-o", work / "mine-parts.jsonl"],
        "mine-whole": [*mine, "--index", dense.work / "idx-shard", "-o", work / "mine-whole.jsonl"],
        "mine-incomplete": [*mine, "--index", work / "part0", "-o", work / "never.jsonl"],
    }
    started = {name: cli_jobs.run(args) for name, args in commands.items()}
    done.update({name: job.result() for name, job in started.items()})
    return work, done


def refused(done, *words: str) -> str:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_partial_index_records_its_shards(parts) -> None:
    work, _ = parts
    for i in (0, 1):
        meta = json.loads((work / f"part{i}" / META_FILE).read_text())
        assert meta["part_of"] == [{"corpus": "corpus.jsonl", "num_shards": 2, "shard_ids": [i]}]
        assert meta["count"] == 6


def test_parts_searched_together_equal_one_flat_index(dense, parts) -> None:
    work, done = parts
    ok(done["merged"])
    ok(dense.done["search-shard"])  # the flat index of both shards at once, same document order
    merged, whole = read_trec(work / "run.trec"), read_trec(dense.work / "run-shard.trec")
    assert ranking(merged) == ranking(whole) and len(merged) == 4
    for qid, rows in merged.items():  # BLAS may round a score's last bit differently on a smaller matrix
        np.testing.assert_allclose([s for _, _, s in rows], [s for _, _, s in whole[qid]], atol=2e-6)


def test_mine_searches_the_parts_together(parts) -> None:
    work, done = parts
    ok(done["mine-merged"])
    ok(done["mine-whole"])
    merged, whole = (
        [json.loads(line) for line in (work / name).read_text().splitlines()]
        for name in ("mine-parts.jsonl", "mine-whole.jsonl")
    )
    assert len(merged) == len(whole) == 4

    def docids(line: dict) -> tuple:
        return line["qid"], [p["docid"] for p in line["positives"]], [n["docid"] for n in line["negatives"]]

    def scores(line: dict) -> list[float]:
        return [p["score"] for p in line["positives"]] + [n["score"] for n in line["negatives"]]

    for a, b in zip(merged, whole):
        assert docids(a) == docids(b)
        np.testing.assert_allclose(scores(a), scores(b), atol=2e-6)  # BLAS rounding on smaller matrices
    refused(done["mine-incomplete"], "part0", "shard(s) 1", "--index")


def test_incomplete_or_repeated_parts_are_refused(parts) -> None:
    work, done = parts
    refused(done["incomplete"], str(work / "part1"), "set of 2 shards of corpus.jsonl", "shard(s) 0")
    refused(done["twice"], "shard 0 of 2", "give each part once")


def test_documents_in_two_indexes_are_refused(dense, parts) -> None:
    _, done = parts
    refused(done["duplicate-ids"], str(dense.work / "idx-pipe"), "is also in", str(dense.work / "idx-file"))


def test_bm25_indexes_are_not_merged(parts) -> None:
    work, done = parts
    refused(done["bm25"], str(work / "bm25"), "BM25", "one BM25 index")


def test_index_refuses_a_lone_shard_without_partial_and_partial_without_shards(parts) -> None:
    work, done = parts
    refused(done["no-partial"], "shard(s) 1 are missing", "--partial")
    refused(done["whole-partial"], "--partial needs encode shards")
    assert not (work / "refused").exists() and not (work / "w").exists()
