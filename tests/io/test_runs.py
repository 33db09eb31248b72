"""simlm_cli.io.runs: TREC and MS MARCO runs, written atomically and read back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simlm_cli.errors import InputError
from simlm_cli.io.runs import (
    RunFormat,
    detect_run_format,
    format_for_output,
    iter_run_blocks,
    read_run,
    write_run,
)

RANKINGS = [
    ("q1", ["d3", "d1", "d2"], [0.9, 0.5, -0.25]),
    ("q2", ["d2"], [1.0]),
    ("q3", [], []),
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def input_error(path: Path, fmt: RunFormat = RunFormat.auto) -> InputError:
    with pytest.raises(InputError) as caught:
        read_run(path, fmt)
    return caught.value


def test_trec_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    assert write_run(path, RANKINGS, tag="mytag") == 3
    assert path.read_text().splitlines() == [
        "q1 Q0 d3 1 0.90000000 mytag",
        "q1 Q0 d1 2 0.50000000 mytag",
        "q1 Q0 d2 3 -0.25000000 mytag",
        "q2 Q0 d2 1 1.00000000 mytag",
    ]
    assert detect_run_format(path) is RunFormat.trec
    run = read_run(path)
    assert run.scores == {"q1": {"d3": 0.9, "d1": 0.5, "d2": -0.25}, "q2": {"d2": 1.0}}
    assert run.first_line == {"q1": 1, "q2": 4}


def test_msmarco_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.tsv"
    write_run(path, RANKINGS)  # auto: .tsv is MS MARCO
    assert path.read_text().splitlines() == ["q1\td3\t1", "q1\td1\t2", "q1\td2\t3", "q2\td2\t1"]
    assert detect_run_format(path) is RunFormat.msmarco
    run = read_run(path)
    # Ranks only: the score is -rank, which keeps the order.
    assert run.scores == {"q1": {"d3": -1.0, "d1": -2.0, "d2": -3.0}, "q2": {"d2": -1.0}}
    assert sorted(run.scores["q1"], key=run.scores["q1"].get, reverse=True) == ["d3", "d1", "d2"]


def test_forced_formats(tmp_path: Path) -> None:
    trec_in_tsv = tmp_path / "run.tsv"
    write_run(trec_in_tsv, RANKINGS, RunFormat.trec)
    assert trec_in_tsv.read_text().startswith("q1 Q0 d3 1 0.90000000 simlm\n")
    msmarco = tmp_path / "run.txt"
    write_run(msmarco, RANKINGS, RunFormat.msmarco)
    assert msmarco.read_text().startswith("q1\td3\t1\n")
    assert read_run(msmarco, RunFormat.msmarco).scores["q2"] == {"d2": -1.0}


def test_format_for_output() -> None:
    assert format_for_output("run.tsv", RunFormat.auto) is RunFormat.msmarco
    assert format_for_output("run.tsv.gz", RunFormat.auto) is RunFormat.msmarco
    assert format_for_output("run.trec", RunFormat.auto) is RunFormat.trec
    assert format_for_output("-", RunFormat.auto) is RunFormat.trec
    assert format_for_output("run.tsv", RunFormat.trec) is RunFormat.trec


def test_gzip_run_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.tsv.gz"
    write_run(path, RANKINGS)
    assert read_run(path).scores["q2"] == {"d2": -1.0}


def test_write_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert write_run(None, RANKINGS[:1], RunFormat.auto) == 1
    assert capsys.readouterr().out.splitlines()[0] == "q1 Q0 d3 1 0.90000000 simlm"


def test_write_is_atomic(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "earlier\n")

    def rankings():
        yield RANKINGS[0]
        raise InputError("queries.tsv", "bad query", line=7)

    with pytest.raises(InputError):
        write_run(path, rankings())
    assert path.read_text() == "earlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["run.trec"]


def test_deep_rankings_get_their_own_ranks(tmp_path: Path) -> None:
    path = tmp_path / "run.tsv"
    docids = [f"d{i}" for i in range(1500)]
    write_run(path, [("q", docids, [0.0] * 1500)])
    assert path.read_text().splitlines()[-1] == "q\td1499\t1500"


def test_duplicate_document_in_a_run(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 0.8 t\nq1 Q0 d1 3 0.7 t\n")
    assert str(input_error(path)) == f"{path}:3: document 'd1' appears twice for query 'q1'"


def test_same_document_for_two_queries_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "run.tsv", "q1\td1\t1\nq2\td1\t1\n")
    assert read_run(path).scores == {"q1": {"d1": -1.0}, "q2": {"d1": -1.0}}


def test_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 0.8\n")
    assert str(input_error(path)) == f"{path}:2: expected 6 columns (trec run), got 5"


def test_score_not_a_number(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "q1 Q0 d1 1 high t\n")
    assert str(input_error(path)) == f"{path}:1: field 'score': 'high' is not a number"
    tsv = write(tmp_path / "run.tsv", "q1\td1\tfirst\n")
    assert str(input_error(tsv)) == f"{tsv}:1: field 'rank': 'first' is not a number"


def test_undetectable_format(tmp_path: Path) -> None:
    path = write(tmp_path / "run.txt", "q1 d1 1 0.5\n")
    assert str(input_error(path)).startswith(f"{path}:1: cannot tell the run format: 4 columns")


@pytest.mark.parametrize("content", ["", "\n \n"])
def test_empty_run(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "run.trec", content)
    assert str(input_error(path)) == f"{path}: empty run"


def test_non_finite_score(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "q1 Q0 d1 1 nan t\n")
    assert str(input_error(path)) == f"{path}:1: field 'score': 'nan' is not a finite number"


# -- streaming: iter_run_blocks ---------------------------------------------------------------------------------
def blocks_of(path: Path, fmt: RunFormat = RunFormat.auto) -> list[tuple]:
    return [(b.qid, b.docids, b.scores, b.line, b.lines) for b in iter_run_blocks(path, fmt)]


def stream_error(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        list(iter_run_blocks(path))
    return str(caught.value)


def test_blocks_are_sorted_by_score_ties_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "q1 Q0 a 1 1.0 t\nq1 Q0 b 2 3.0 t\n\nq1 Q0 c 3 1.0 t\nq2 Q0 a 1 -2 t\n")
    assert blocks_of(path) == [
        ("q1", ["b", "a", "c"], [3.0, 1.0, 1.0], 1, [2, 1, 4]),
        ("q2", ["a"], [-2.0], 5, [5]),
    ]


def test_msmarco_blocks_are_sorted_by_rank_without_scores(tmp_path: Path) -> None:
    path = write(tmp_path / "run.tsv", "q1\ta\t3\nq1\tb\t1\nq1\tc\t2\nq2\td\t1\n")
    assert blocks_of(path) == [("q1", ["b", "c", "a"], None, 1, [2, 3, 1]), ("q2", ["d"], None, 4, [4])]
    assert blocks_of(path, RunFormat.msmarco) == blocks_of(path)


def test_blocks_match_read_run(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    write_run(path, RANKINGS)
    whole = read_run(path).scores
    assert {b.qid: dict(zip(b.docids, b.scores)) for b in iter_run_blocks(path)} == whole


def test_ungrouped_run_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "q1 Q0 d1 1 3 x\nq1 Q0 d2 2 2 x\nq2 Q0 d3 1 1 x\nq1 Q0 d4 3 0.5 x\n")
    message = stream_error(path)
    assert message.startswith(f"{path}:4: query 'q1' already had lines from line 1;")
    assert "sort -s -k1,1" in message and "\n" not in message


def test_stream_errors(tmp_path: Path) -> None:
    dup = write(tmp_path / "dup.trec", "q1 Q0 d1 1 0.9 t\nq2 Q0 d1 1 0.9 t\nq2 Q0 d1 2 0.8 t\n")
    assert stream_error(dup) == f"{dup}:3: document 'd1' appears twice for query 'q2'"
    empty = write(tmp_path / "empty.trec", "\n  \n")
    assert stream_error(empty) == f"{empty}: empty run"
    odd = write(tmp_path / "odd.txt", "q1 d1 1 0.5\n")
    assert stream_error(odd).startswith(f"{odd}:1: cannot tell the run format: 4 columns")
    short = write(tmp_path / "short.trec", "q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 0.8\n")
    assert stream_error(short) == f"{short}:2: expected 6 columns (trec run), got 5"


def tripwire(lines: list[str], fail_after: int) -> Iterator[tuple[int, str]]:
    """Numbered lines, then a failure if the reader asks for more than `fail_after` of them."""
    for lineno, text in enumerate(lines, 1):
        if lineno > fail_after:
            raise AssertionError(f"read line {lineno}: the reader did not stop after one query's block")
        yield lineno, text


def test_reader_streams_one_block_at_a_time() -> None:
    lines = [f"q{q}\td{d}\t{d}" for q in range(100) for d in range(1, 4)]
    # The first block is complete once the second query's first line is read: line 4.
    blocks = iter_run_blocks("big.tsv", RunFormat.auto, tripwire(lines, fail_after=4))
    first = next(blocks)
    assert (first.qid, first.docids, first.scores, first.line) == ("q0", ["d1", "d2", "d3"], None, 1)
    with pytest.raises(AssertionError, match="read line 5"):
        next(blocks)  # the tripwire itself can fire


def test_ungrouped_error_comes_as_soon_as_the_query_reappears() -> None:
    lines = ["a Q0 d1 1 1 t", "b Q0 d1 1 1 t", "a Q0 d2 2 0 t", "c Q0 d1 1 1 t"]
    blocks = iter_run_blocks("run.trec", RunFormat.trec, tripwire(lines, fail_after=3))
    assert next(blocks).qid == "a"
    with pytest.raises(InputError, match=r"^run.trec:3: query 'a' already had lines from line 1"):
        next(blocks)


def test_read_run_from_stdin_keeps_the_first_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`simlm search ... | simlm evaluate --run -`: format detection must not eat the first ranking line."""
    import io

    class Stdin:
        buffer = io.BytesIO(b"q1 Q0 d3 1 0.9 t\nq1 Q0 d1 2 0.5 t\nq2 Q0 d2 1 1.0 t\n")

    monkeypatch.setattr("sys.stdin", Stdin())
    run = read_run("-")
    assert run.scores == {"q1": {"d3": 0.9, "d1": 0.5}, "q2": {"d2": 1.0}}
