"""`simlm mine`: hard negatives from hand-written runs (in process, exact), from BM25 and dense indexes (CLI)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.qrels import read_qrels
from simlm_cli.io.queries import read_queries
from simlm_cli.io.runs import RunFormat, iter_run_blocks
from simlm_cli.options.mine import parse_rank_range
from simlm_cli.pipeline.mine import (
    MineConfig,
    Miner,
    mine_blocks,
    run_mine,
    training_queries,
)

# Judged (tests/conftest.py): q1: d1=2 d2=1; q2: d4=2 d5=1; q3: d9=2; q4: d11=2 d12=1.
# The run ranks q1's positive d2 first, misses q2's d5 and q3's d9, skips q4 and holds q9 (judged nowhere).
RUN = {
    "q1": [("d2", 15.0), ("d3", 14.0), ("d1", 13.5), ("d7", 13.0), ("d4", 12.0), ("d8", 11.0)],
    "q9": [("d1", 3.0)],
    "q2": [("d6", 9.0), ("d4", 8.5), ("d1", 8.0), ("d10", 7.0)],
    "q3": [("d7", 5.0), ("d8", 4.0), ("d10", 3.0)],
}
ALL_IDS = [f"d{i}" for i in range(1, 13)]


def trec_lines(run: dict) -> list[str]:
    return [f"{q} Q0 {d} {r} {s:.6f} hand" for q, rows in run.items() for r, (d, s) in enumerate(rows, 1)]


def write_run(path: Path, run: dict = RUN, msmarco: bool = False) -> Path:
    if msmarco:
        lines = [f"{q}\t{d}\t{r}" for q, rows in run.items() for r, (d, _) in enumerate(rows, 1)]
    else:
        lines = trec_lines(run)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_output(path: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["qid"]: r for r in records}


def pairs(candidates: list[dict]) -> list[tuple[str, float | None]]:
    return [(c["docid"], c["score"]) for c in candidates]


@pytest.fixture()
def mine(tmp_path: Path, tiny_data: SimpleNamespace):
    """mine(**options) -> (records by qid in file order, summary) for the hand-written TREC run."""
    run_path = write_run(tmp_path / "run.trec")

    def _mine(**options) -> tuple[dict[str, dict], dict]:
        options.setdefault("run", str(run_path))
        output = tmp_path / "train.jsonl"
        config = MineConfig(queries=str(tiny_data.queries), qrels=str(tiny_data.qrels), output=str(output), **options)
        summary = run_mine(config)
        return read_output(output), summary

    return _mine


def assert_disjoint(records: dict[str, dict], judged: dict[str, set[str]]) -> None:
    for qid, record in records.items():
        negatives = [c["docid"] for c in record["negatives"]]
        assert len(negatives) == len(set(negatives)), qid
        assert not set(negatives) & judged[qid], qid


def judged_docs(tiny_data) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for q, d, _ in tiny_data.judgments:
        out.setdefault(q, set()).add(d)
    return out


# -- a hand-written run ---------------------------------------------------------------------------------------
def test_defaults_exact(mine, tiny_data) -> None:
    records, summary = mine()
    assert list(records) == ["q1", "q2", "q3", "q4"]  # run order, q9 skipped, q4 (not in the run) last
    assert records["q1"]["query"] == "how do proteins fold"
    assert pairs(records["q1"]["positives"]) == [("d1", 13.5), ("d2", 15.0)]  # qrels order, run scores
    assert pairs(records["q1"]["negatives"]) == [("d3", 14.0), ("d7", 13.0), ("d4", 12.0), ("d8", 11.0)]
    assert pairs(records["q2"]["positives"]) == [("d4", 8.5), ("d5", None)]
    assert pairs(records["q2"]["negatives"]) == [("d6", 9.0), ("d1", 8.0), ("d10", 7.0)]
    assert pairs(records["q3"]["positives"]) == [("d9", None)]
    assert pairs(records["q3"]["negatives"]) == [("d7", 5.0), ("d8", 4.0), ("d10", 3.0)]
    assert pairs(records["q4"]["positives"]) == [("d11", None), ("d12", None)]
    assert records["q4"]["negatives"] == []
    assert_disjoint(records, judged_docs(tiny_data))
    assert summary | {"seconds": 0} == {
        "queries": 4, "mean_negatives": 2.5, "random_negatives": 0, "queries_without_retrieved_negatives": 1,
        "positives_not_retrieved": 4, "margin_dropped": 0, "queries_not_in_run": 1, "run_queries_skipped": 1,
        "qrels_queries_without_positive": 0, "seconds": 0,
    }  # fmt: skip


def test_min_relevance_excludes_low_grades_from_both_sides(mine) -> None:
    records, _ = mine(min_relevance=2)
    assert pairs(records["q1"]["positives"]) == [("d1", 13.5)]
    # d2 (grade 1, ranked first) is neither a positive nor a negative.
    assert pairs(records["q1"]["negatives"]) == [("d3", 14.0), ("d7", 13.0), ("d4", 12.0), ("d8", 11.0)]
    assert [c["docid"] for c in records["q2"]["negatives"]] == ["d6", "d1", "d10"]
    assert pairs(records["q4"]["positives"]) == [("d11", None)]


def test_depth_rank_range_max_negatives(mine) -> None:
    records, summary = mine(depth=3)
    assert pairs(records["q1"]["positives"]) == [("d1", 13.5), ("d2", 15.0)]
    assert [c["docid"] for c in records["q1"]["negatives"]] == ["d3"]
    assert [c["docid"] for c in records["q2"]["negatives"]] == ["d6", "d1"]
    assert summary["positives_not_retrieved"] == 4

    records, _ = mine(depth=3, rank_range=(3, 3))  # rank 3 of q1 is its positive d1: nothing left
    assert records["q1"]["negatives"] == [] and [c["docid"] for c in records["q2"]["negatives"]] == ["d1"]

    records, _ = mine(rank_range=parse_rank_range("2:4"))
    assert [c["docid"] for c in records["q1"]["negatives"]] == ["d3", "d7"]
    assert [c["docid"] for c in records["q2"]["negatives"]] == ["d1", "d10"]
    assert [c["docid"] for c in records["q3"]["negatives"]] == ["d8", "d10"]

    records, _ = mine(max_negatives=2)
    assert [[c["docid"] for c in r["negatives"]] for r in records.values()] == [
        ["d3", "d7"], ["d6", "d1"], ["d7", "d8"], [],
    ]  # fmt: skip


def test_score_margin(mine, tiny_data) -> None:
    records, summary = mine(score_margin=1.0)
    # q1: best positive 15.0 -> d3 (14.0, exactly the margin) goes; q2: best 8.5 -> d6 (above) and d1 (8.0) go.
    assert [c["docid"] for c in records["q1"]["negatives"]] == ["d7", "d4", "d8"]
    assert [c["docid"] for c in records["q2"]["negatives"]] == ["d10"]
    # q3's positive was not retrieved: the margin is a no-op.
    assert [c["docid"] for c in records["q3"]["negatives"]] == ["d7", "d8", "d10"]
    assert summary["margin_dropped"] == 3
    # What the margin dropped is never drawn back in as a random negative: all but d1, d2 (judged) and d3.
    records, _ = mine(score_margin=1.0, random_negatives=50, corpus=str(tiny_data.corpus))
    assert {c["docid"] for c in records["q1"]["negatives"]} == set(ALL_IDS) - {"d1", "d2", "d3"}
    assert {c["docid"] for c in records["q2"]["negatives"]}.isdisjoint({"d6", "d1", "d4", "d5"})


def test_random_negatives(mine, tiny_data, tmp_path) -> None:
    options = {"random_negatives": 3, "corpus": str(tiny_data.corpus), "seed": 7}
    records, summary = mine(**options)
    assert summary["random_negatives"] == 12
    for record in records.values():
        random_ones = record["negatives"][-3:]
        assert all(c["score"] is None for c in random_ones) and all(c["docid"] in ALL_IDS for c in random_ones)
    assert_disjoint(records, judged_docs(tiny_data))
    assert records == mine(**options)[0]  # deterministic
    other = mine(**(options | {"seed": 8}))[0]
    assert [r["negatives"] for r in other.values()] != [r["negatives"] for r in records.values()]
    # A function of the seed and the query id: q4 draws the same with q1 alone in the run.
    alone = mine(run=str(write_run(tmp_path / "q1.trec", {"q1": RUN["q1"]})), **options)[0]
    assert alone["q4"] == records["q4"]
    # More than the corpus holds: every passage that is neither judged nor mined, once each.
    records, _ = mine(random_negatives=50, corpus=str(tiny_data.corpus))
    mined = {"d3", "d7", "d4", "d8"}
    assert {c["docid"] for c in records["q1"]["negatives"]} == set(ALL_IDS) - {"d1", "d2"}
    assert len(records["q1"]["negatives"]) == 10 and mined < {c["docid"] for c in records["q1"]["negatives"]}


def test_msmarco_run_has_no_scores(mine, tmp_path) -> None:
    path = write_run(tmp_path / "run.tsv", msmarco=True)
    records, _ = mine(run=str(path))
    assert pairs(records["q1"]["negatives"]) == [("d3", None), ("d7", None), ("d4", None), ("d8", None)]
    assert pairs(records["q1"]["positives"]) == [("d1", None), ("d2", None)]
    with pytest.raises(InputError, match="--score-margin needs scores"):
        mine(run=str(path), score_margin=0.5)


def test_teacher_scores_every_candidate(mine, tiny_data, tmp_path) -> None:
    """--teacher: a positive the run missed, and a random negative, get the query's lowest run score."""
    records, _ = mine(teacher=True, random_negatives=2, corpus=str(tiny_data.corpus))
    assert pairs(records["q2"]["positives"]) == [("d4", 8.5), ("d5", 7.0)]
    assert pairs(records["q3"]["positives"]) == [("d9", 3.0)]
    assert pairs(records["q1"]["negatives"])[:4] == [("d3", 14.0), ("d7", 13.0), ("d4", 12.0), ("d8", 11.0)]
    assert [score for _, score in pairs(records["q1"]["negatives"])[4:]] == [11.0, 11.0]
    assert all(c["score"] is not None for r in records.values() for c in r["positives"] + r["negatives"])
    with pytest.raises(InputError, match="--teacher needs scores"):
        mine(run=str(write_run(tmp_path / "run.tsv", msmarco=True)), teacher=True)


def test_blocks_are_ordered_by_score_or_rank(tmp_path) -> None:
    path = tmp_path / "shuffled.trec"
    path.write_text("q1 Q0 a 3 1.0 t\nq1 Q0 b 1 3.0 t\nq1 Q0 c 2 2.0 t\nq2 Q0 a 1 1.0 t\n")
    blocks = list(iter_run_blocks(path))
    assert [(b.qid, b.docids, b.scores, b.line) for b in blocks] == [
        ("q1", ["b", "c", "a"], [3.0, 2.0, 1.0], 1), ("q2", ["a"], [1.0], 4),
    ]  # fmt: skip
    path = tmp_path / "shuffled.tsv"
    path.write_text("q1\ta\t2\nq1\tb\t1\n")
    assert [b.docids for b in iter_run_blocks(path, RunFormat.msmarco)] == [["b", "a"]]


def test_bad_inputs_are_one_line_errors(mine, tmp_path, tiny_data) -> None:
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(Path(tiny_data.qrels).read_text() + "q7\td1\t1\n")
    with pytest.raises(InputError) as err:
        run_mine(MineConfig(queries=str(tiny_data.queries), qrels=str(qrels), output=str(tmp_path / "o"), run="x"))
    assert str(err.value).startswith(f"{qrels}:9: query 'q7' is judged but not in the queries file")
    duplicate = tmp_path / "dup.trec"
    duplicate.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d1 2 1.0 t\n")
    with pytest.raises(InputError, match=r"dup.trec:2: document 'd1' appears twice"):
        mine(run=str(duplicate))
    with pytest.raises(SimlmError, match="exactly one of --run"):
        mine(run=None)
    with pytest.raises(SimlmError, match="needs the corpus ids"):
        mine(random_negatives=1)
    with pytest.raises(SimlmError, match="--rank-range"):
        parse_rank_range("5:2")
    assert parse_rank_range("3:") == (3, None) and parse_rank_range("3:200") == (3, 200)
    assert not (tmp_path / "train.jsonl").exists() and not (tmp_path / "o").exists()


def test_ungrouped_run_exits_2_with_file_and_line(run_cli, tmp_path, tiny_data) -> None:
    lines = trec_lines(RUN) + ["q1 Q0 d12 7 1.000000 hand"]  # q1 again, after q9, q2 and q3
    run = tmp_path / "ungrouped.trec"
    run.write_text("\n".join(lines) + "\n")
    output = tmp_path / "train.jsonl"
    args = ["mine", "--run", run, "--queries", tiny_data.queries, "--qrels", tiny_data.qrels, "--output", output]
    done = run_cli(args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert f"{run}:{len(lines)}:" in done.stderr and "sort -s -k1,1" in done.stderr
    assert not output.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- streaming ------------------------------------------------------------------------------------------------
def tripwire(lines: list[str], fail_after: int) -> Iterator[tuple[int, str]]:
    """Numbered lines, then an error if the reader asks for more than `fail_after` of them."""
    for lineno, text in enumerate(lines, 1):
        if lineno > fail_after:
            raise AssertionError(f"read line {lineno}: the reader did not stop at one query's block")
        yield lineno, text


def test_run_reader_holds_one_block(tmp_path) -> None:
    lines = [f"q{q} Q0 d{d} {d} {100 - d}.0 t" for q in range(1000) for d in range(1, 6)]
    # The first block comes out once the second block's first line is read: 6 lines of 5000.
    blocks = iter_run_blocks("big.trec", RunFormat.auto, tripwire(lines, fail_after=6))
    first = next(blocks)
    assert (first.qid, first.docids, first.scores) == ("q0", ["d1", "d2", "d3", "d4", "d5"], [99.0, 98, 97, 96, 95])


def test_mining_streams_examples(tiny_data) -> None:
    queries, qrels = read_queries(tiny_data.queries), read_qrels(tiny_data.qrels)
    wanted, _ = training_queries(qrels, queries, 1)
    miner = Miner(MineConfig(queries="", qrels="", output=""), queries, wanted, None)
    lines = trec_lines({"q1": RUN["q1"], "q2": RUN["q2"], "q3": RUN["q3"], "q4": [("d1", 1.0), ("d2", 0.5)]})
    # Three examples need q1..q3 (13 lines) and one line of q4; a reader or miner holding the run would trip.
    blocks = iter_run_blocks("run.trec", RunFormat.trec, tripwire(lines, fail_after=14))
    examples = list(itertools.islice(mine_blocks(blocks, miner), 3))
    assert [e.qid for e in examples] == ["q1", "q2", "q3"]


def test_random_draws_from_a_large_corpus(tiny_data) -> None:
    queries, qrels = read_queries(tiny_data.queries), read_qrels(tiny_data.qrels)
    wanted, _ = training_queries(qrels, queries, 1)
    ids = [f"p{i}" for i in range(5000)] + ALL_IDS
    config = MineConfig(queries="", qrels="", output="", random_negatives=40, seed=3)
    first = Miner(config, queries, wanted, ids).mine("q1", ["d3", "p7"], [2.0, 1.0])
    again = Miner(config, queries, wanted, ids).mine("q1", ["d3", "p7"], [2.0, 1.0])
    drawn = [c.docid for c in first.negatives[2:]]
    assert first == again and len(drawn) == len(set(drawn)) == 40
    assert not set(drawn) & {"d1", "d2", "d3", "p7"} and set(drawn) <= set(ids)
    assert Miner(replace(config, seed=4), queries, wanted, ids).mine("q1", [], []).negatives != first.negatives[2:]


# -- from an index (CLI) --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def indexes(tmp_path_factory, tiny_data, tiny_st_dir, cli_jobs) -> SimpleNamespace:
    work = tmp_path_factory.mktemp("mine-index")
    runtime = ["--device", "cpu", "--precision", "fp32"]
    bm25 = cli_jobs.run(["index", "--bm25", "--corpus", tiny_data.corpus, "--output", work / "bm25"])
    encode = ["encode", "--model", tiny_st_dir, "--corpus", tiny_data.corpus, *runtime]
    dense = cli_jobs.pipe(encode, ["index", "--output", work / "dense"])
    for done in (bm25.result(), *dense.result()):
        assert done.returncode == 0, done.stderr[-2000:]
    common = ["mine", "--queries", tiny_data.queries, "--qrels", tiny_data.qrels, "--json"]
    jobs = {
        "bm25": cli_jobs.run([*common, "--index", work / "bm25", "--depth", "3", "--random-negatives", "2",
                              "--output", work / "bm25.jsonl"]),
        "dense": cli_jobs.run([*common, "--index", work / "dense", "--depth", "12", *runtime,
                               "--output", work / "dense.jsonl.gz"]),
    }  # fmt: skip
    return SimpleNamespace(work=work, done={name: job.result() for name, job in jobs.items()})


def check_index_output(done, path: Path, tiny_data) -> dict[str, dict]:
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    records = read_output(path)
    assert list(records) == ["q1", "q2", "q3", "q4"]  # the queries file's order
    assert summary["queries"] == 4 and summary["queries_not_in_run"] == 0
    assert_disjoint(records, judged_docs(tiny_data))
    return records


@pytest.mark.slow  # builds two indexes and mines each: ~30-60 s on 2 shared cores
def test_mine_from_bm25_index(indexes, tiny_data) -> None:
    records = check_index_output(indexes.done["bm25"], indexes.work / "bm25.jsonl", tiny_data)
    # q1 "how do proteins fold": BM25 finds its positive d1 and scores it.
    assert records["q1"]["positives"][0]["docid"] == "d1" and records["q1"]["positives"][0]["score"] > 0
    for record in records.values():
        mined = [c for c in record["negatives"] if c["score"] is not None]
        scores = [c["score"] for c in mined]
        assert len(mined) <= 3 and scores == sorted(scores, reverse=True)
        random_ones = record["negatives"][len(mined) :]  # from the index's own ids: no --corpus given
        assert len(random_ones) == 2 and all(c["docid"] in ALL_IDS and c["score"] is None for c in random_ones)


@pytest.mark.slow  # builds two indexes and mines each: ~30-60 s on 2 shared cores
def test_mine_from_dense_index(indexes, tiny_data) -> None:
    import gzip

    path = indexes.work / "dense.jsonl"
    path.write_bytes(gzip.decompress((indexes.work / "dense.jsonl.gz").read_bytes()))
    records = check_index_output(indexes.done["dense"], path, tiny_data)
    judged = judged_docs(tiny_data)
    for qid, record in records.items():
        # Depth 12 retrieves the whole corpus: every positive is scored, every other passage is a negative.
        assert all(c["score"] is not None for c in record["positives"])
        assert {c["docid"] for c in record["negatives"]} == set(ALL_IDS) - judged[qid]
        scores = [c["score"] for c in record["negatives"]]
        assert scores == sorted(scores, reverse=True)
