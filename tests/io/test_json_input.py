"""simlm_cli.io.json_input: one JSON parser for user files, with a nesting limit (issue 21, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simlm_cli.errors import InputError
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.io.json_input import MAX_DEPTH, loads, too_deep
from simlm_cli.io.train_file import read_train_file

DEEP = "[" * 10_000 + "]" * 10_000


def test_nesting_up_to_the_limit_parses_and_one_more_level_is_refused() -> None:
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH, "x.json") == json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(InputError, match=rf"^x.json:3: JSON nested deeper than {MAX_DEPTH} levels"):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "x.json", line=3)


def test_brackets_inside_strings_and_side_by_side_do_not_count_as_nesting() -> None:
    text = json.dumps({"text": "[{" * 500 + '\\" [[', "negatives": [{"docid": str(i)} for i in range(500)]})
    assert not too_deep(text)
    assert loads(text, "x.json")["negatives"][499] == {"docid": "499"}


def test_malformed_json_is_still_the_callers_to_word() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads("{garbage", "x.json")


def test_a_deeply_nested_corpus_line_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "text": "x"}\n{"_id": "d2", "text": ' + DEEP + "}\n")
    with pytest.raises(InputError, match=rf"^{path}:2: JSON nested deeper than 100 levels"):
        list(iter_corpus(path))


def test_a_deeply_nested_first_corpus_line_is_one_error(tmp_path: Path) -> None:
    """The format detection parses the first line on its own: it was the first RecursionError."""
    path = tmp_path / "corpus.jsonl"
    path.write_text("{" + '"a": {' * 5000 + "}" * 5001 + "\n")
    with pytest.raises(InputError, match=rf"^{path}:1: JSON nested deeper"):
        list(iter_corpus(path))


def test_a_deeply_nested_training_line_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"qid": "q1", "query": "x", "positives": ' + DEEP + "}\n")
    with pytest.raises(InputError, match=rf"^{path}:1: JSON nested deeper"):
        read_train_file(path)
