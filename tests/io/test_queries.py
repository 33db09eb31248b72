"""simlm_cli.io.queries: BEIR queries.jsonl and `qid<TAB>text` TSV."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from simlm_cli.errors import InputError
from simlm_cli.io.queries import read_queries


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def input_error(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        read_queries(path)
    return caught.value


def test_beir_jsonl(tmp_path: Path) -> None:
    lines = [{"_id": "q1", "text": " first? ", "metadata": {}}, {"_id": 2, "text": "second"}]
    path = write(tmp_path / "queries.jsonl", "".join(json.dumps(r) + "\n" for r in lines) + "\n")
    assert read_queries(path) == {"q1": "first?", "2": "second"}


def test_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "queries.dev.tsv", "1048585\twhat is paula deen's brother\n2\tsecond\r\n")
    assert read_queries(path) == {"1048585": "what is paula deen's brother", "2": "second"}


def test_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "queries.jsonl.gz", '{"_id": "q1", "text": "x"}\n')
    assert read_queries(path) == {"q1": "x"}


def test_order_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "".join(f"q{i}\ttext {i}\n" for i in (3, 1, 2)))
    assert list(read_queries(path)) == ["q3", "q1", "q2"]


def test_malformed_json(tmp_path: Path) -> None:
    path = write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "x"}\n{"_id": "q2", "text": "y"\n')
    error = input_error(path)
    assert str(error).startswith(f"{path}:2: malformed JSON")


@pytest.mark.parametrize("field, record", [("_id", {"text": "x"}), ("text", {"_id": "q2", "text": None})])
def test_missing_field(tmp_path: Path, field: str, record: dict) -> None:
    path = write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "x"}\n' + json.dumps(record) + "\n")
    assert str(input_error(path)) == f"{path}:2: field '{field}': missing"


def test_a_line_that_is_not_an_object_is_read_as_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "x"}\n[1]\n')
    # "[1]" does not start with "{", so it is read as TSV, where it has one column.
    assert str(input_error(path)).startswith(f"{path}:2: expected 'qid<TAB>text'")


def test_duplicate_id(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "q1\ta\nq2\tb\nq1\tc\n")
    assert str(input_error(path)) == f"{path}:3: duplicate query id 'q1'"


def test_empty_id(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "q1\ta\n \tb\n")
    assert str(input_error(path)) == f"{path}:2: empty query id"


def test_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "q1\ta\tb\n")
    assert str(input_error(path)) == f"{path}:1: expected 'qid<TAB>text', got 3 columns"


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_no_queries(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "q.tsv", content)
    assert str(input_error(path)) == f"{path}: no queries"


def test_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", b"q1\tfine\nq2\t\xc3(\n")
    assert str(input_error(path)).startswith(f"{path}:2: invalid UTF-8")


def test_query_ids_with_white_space_are_an_error(tmp_path: Path) -> None:
    err = input_error(write(tmp_path / "q.jsonl", '{"_id": "q 1", "text": "x"}\n'))
    assert err.line == 1 and "holds white space" in str(err)


def test_forced_formats(tmp_path: Path) -> None:
    """A TSV query id may start with '{' (auto-detection would read the line as JSON); forcing tsv reads it."""
    from simlm_cli.io.queries import QueriesFormat

    path = write(tmp_path / "q.tsv", "{odd}\tbraces in the id\nq2\tplain\n")
    assert read_queries(path, QueriesFormat.tsv) == {"{odd}": "braces in the id", "q2": "plain"}
    with pytest.raises(InputError, match="malformed JSON") as caught:
        read_queries(path)
    assert caught.value.line == 1
    with pytest.raises(InputError) as caught:
        read_queries(path, QueriesFormat.beir)
    assert caught.value.line == 1


# -- issue 21, item 5: query texts that were accepted silently ------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "line", "expect"),
    [
        ("queries.jsonl", '{"_id": "q2", "text": "  "}', "{path}:2: field 'text': empty query text"),
        ("queries.jsonl", '{"_id": "q2", "text": ""}', "{path}:2: field 'text': empty query text"),
        ("queries.jsonl", '{"_id": "q2", "text": 5}', "{path}:2: field 'text': expected a string, got int"),
        ("queries.jsonl", '{"_id": "q2", "text": ["a"]}', "{path}:2: field 'text': expected a string, got list"),
        ("queries.jsonl", '{"_id": ["q2"], "text": "a"}', "{path}:2: field '_id': expected a string, got list"),
        ("queries.tsv", "q2\t ", "{path}:2: empty query text"),
        ("queries.jsonl", '{"_id": "q2", "text": ' + "[" * 10_000 + "}", "{path}:2: JSON nested deeper than 100"),
    ],
    ids=["blank-text", "empty-text", "number-text", "list-text", "list-id", "tsv-empty-text", "deeply-nested"],
)
def test_a_query_text_must_be_a_non_empty_string(tmp_path: Path, name: str, line: str, expect: str) -> None:
    first = '{"_id": "q1", "text": "x"}' if name.endswith(".jsonl") else "q1\tx"
    path = write(tmp_path / name, f"{first}\n{line}\n")
    assert str(input_error(path)).startswith(expect.format(path=path))
