"""simlm_cli.io.qrels: BEIR TSV with its header, and TREC `qid 0 docid rel`."""

from __future__ import annotations

from pathlib import Path

import pytest

from simlm_cli.errors import InputError
from simlm_cli.io.qrels import read_qrels


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def input_error(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        read_qrels(path)
    return caught.value


def test_beir_with_header(tmp_path: Path) -> None:
    path = write(tmp_path / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\n\nq2\td3\t0\n")
    qrels = read_qrels(path)
    assert qrels.judgments == {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 0}}
    assert qrels.first_line == {"q1": 2, "q2": 5}
    assert len(qrels) == 2
    assert qrels.path == str(path)


def test_beir_without_header(tmp_path: Path) -> None:
    path = write(tmp_path / "test.tsv", "q1\td1\t1\n")
    assert read_qrels(path).judgments == {"q1": {"d1": 1}}


def test_trec(tmp_path: Path) -> None:
    path = write(tmp_path / "qrels.txt", "q1 0 d1 1\nq1 0 d2 3\nq2 Q0 d9 -1\n")
    qrels = read_qrels(path)
    assert qrels.judgments == {"q1": {"d1": 1, "d2": 3}, "q2": {"d9": -1}}
    assert qrels.first_line == {"q1": 1, "q2": 3}


def test_relevant_threshold(tmp_path: Path) -> None:
    qrels = read_qrels(write(tmp_path / "q.tsv", "q1\ta\t0\nq1\tb\t1\nq1\tc\t2\nq1\td\t3\n"))
    assert qrels.relevant("q1") == {"b", "c", "d"}
    assert qrels.relevant("q1", threshold=2) == {"c", "d"}
    assert qrels.relevant("absent") == set()


def test_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n")
    assert str(input_error(path)) == f"{path}:3: expected 3 (BEIR) or 4 (TREC) columns, got 2"


def test_relevance_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "q1\td1\t1\nq1\td2\thigh\n")
    error = input_error(path)
    assert str(error) == f"{path}:2: field 'relevance': relevance 'high' is not an integer"
    assert (error.line, error.field) == (2, "relevance")


@pytest.mark.parametrize("content", ["", "query-id\tcorpus-id\tscore\n", "\n\n"])
def test_no_judgments(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "q.tsv", content)
    assert str(input_error(path)) == f"{path}: no judgments"


def test_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", b"q1\td1\t1\nq\xff\td2\t1\n")
    assert str(input_error(path)).startswith(f"{path}:2: invalid UTF-8")


def test_a_pair_judged_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    err = input_error(write(tmp_path / "q.tsv", "q1\td1\t1\nq2\td1\t1\nq1\td1\t2\n"))
    assert err.line == 3 and "'q1' judges 'd1' again (first on line 1)" in str(err)


def test_forced_formats(tmp_path: Path) -> None:
    from simlm_cli.io.qrels import QrelsFormat

    trec = write(tmp_path / "trec.txt", "q1 0 d1 1\nq1 0 d2 0\n")
    assert read_qrels(trec, QrelsFormat.trec).judgments == {"q1": {"d1": 1, "d2": 0}}
    with pytest.raises(InputError, match="expected 3 \\(beir\\) columns, got 4"):
        read_qrels(trec, QrelsFormat.beir)
    beir = write(tmp_path / "beir.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert read_qrels(beir, QrelsFormat.beir).judgments == {"q1": {"d1": 1}}
    with pytest.raises(InputError, match="expected 4 \\(trec\\) columns, got 3") as caught:
        read_qrels(beir, QrelsFormat.trec)  # a forced TREC file has no header to skip
    assert caught.value.line == 1
