"""Run lines assembled by numpy for a block of rankings are exactly those of the per-line writers."""

from __future__ import annotations

import io

import numpy as np
import pytest

from simlm_cli.io.ranked_block import RankedBlock, format_msmarco, format_trec
from simlm_cli.io.runs import RunFormat, _write_msmarco, _write_trec, write_run


def per_line(block: RankedBlock, writer, tag: str = "simlm") -> str:
    out = io.StringIO()
    for qid, docids, scores in block.rankings():
        writer(out, qid, docids, scores, tag)
    return out.getvalue()


def random_block(rng: np.random.Generator, queries: int = 7, k: int = 13, scale: float = 1.0) -> RankedBlock:
    ids = np.array([f"d{i}".encode() for i in range(50)] + ["naïve-é".encode(), b"x" * 20])
    scores = np.sort(rng.standard_normal((queries, k)) * scale, axis=1)[:, ::-1].astype(np.float32)
    return RankedBlock([f"q{i}" for i in range(queries)], ids[rng.integers(0, len(ids), (queries, k))], scores)


@pytest.mark.parametrize("scale", [1.0, 0.001, 37.5, 12345.0])
def test_trec_block_equals_the_per_line_writer(scale: float) -> None:
    block = random_block(np.random.default_rng(int(scale * 10)), scale=scale)
    assert block.formattable()
    assert format_trec(block, "my-tag") == per_line(block, _write_trec, "my-tag")


def test_edge_scores_format_as_printf_does() -> None:
    values = [[0.0, 1.0, -1.0, 10.0, 100.0, 999.99999999, 1e-9, -1e-9, 0.123456785, 5.0e-8]]
    block = RankedBlock(["q"], np.array([[f"d{i}".encode() for i in range(10)]]), np.array(values))
    assert format_trec(block, "t") == per_line(block, _write_trec, "t")


def test_msmarco_block_equals_the_per_line_writer() -> None:
    block = random_block(np.random.default_rng(3))
    assert format_msmarco(block) == per_line(block, _write_msmarco)


def test_write_run_takes_blocks_and_single_rankings_alike(tmp_path) -> None:
    block = random_block(np.random.default_rng(4), queries=3, k=4)
    single = [("q9", ["a", "b"], [2.0, 1.0])]
    assert write_run(tmp_path / "run.trec", [block, *single]) == 4
    assert (tmp_path / "run.trec").read_text() == per_line(
        block, _write_trec
    ) + "q9 Q0 a 1 2.00000000 simlm\nq9 Q0 b 2 1.00000000 simlm\n"
    assert write_run(tmp_path / "run.tsv", [block], RunFormat.auto) == 3
    assert (tmp_path / "run.tsv").read_text() == per_line(block, _write_msmarco)


def test_blocks_the_fast_path_cannot_take_go_line_by_line(tmp_path) -> None:
    block = random_block(np.random.default_rng(5), queries=2, k=3)
    block.scores[0, 1] = np.inf
    assert not block.formattable()
    write_run(tmp_path / "run.trec", [block])
    assert (tmp_path / "run.trec").read_text() == per_line(block, _write_trec)


def test_empty_block() -> None:
    block = RankedBlock([], np.zeros((0, 5), dtype="S3"), np.zeros((0, 5)))
    assert format_trec(block, "t") == "" and format_msmarco(block) == ""
