"""simlm_cli.io.corpus: BEIR, MS MARCO/DPR TSV and Pyserini corpora, and errors that point at file:line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from simlm_cli.errors import InputError
from simlm_cli.io.corpus import CorpusFormat, Passage, detect_corpus_format, iter_corpus


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(gzip.compress(text) if path.name.endswith(".gz") else text)
    return path


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def ids(path: Path, fmt: CorpusFormat = CorpusFormat.auto) -> list[tuple[str, str, str]]:
    return [(p.id, p.title, p.text) for p in iter_corpus(path, fmt)]


def input_error(path: Path, fmt: CorpusFormat = CorpusFormat.auto) -> InputError:
    with pytest.raises(InputError) as caught:
        list(iter_corpus(path, fmt))
    return caught.value


# -- formats ---------------------------------------------------------------------------------------------------
def test_beir(tmp_path: Path) -> None:
    path = write(
        tmp_path / "corpus.jsonl",
        jsonl(
            {"_id": "d1", "title": " A title ", "text": " Some text. ", "metadata": {}},
            {"_id": 7, "text": "No title here."},
            {"_id": "d3", "title": None, "text": "Null title."},
        ),
    )
    assert detect_corpus_format(path) is CorpusFormat.beir
    passages = list(iter_corpus(path))
    assert [(p.id, p.title, p.text, p.line) for p in passages] == [
        ("d1", "A title", "Some text.", 1),
        ("7", "", "No title here.", 2),
        ("d3", "", "Null title.", 3),
    ]
    assert passages[0].joined() == "A title Some text."
    assert passages[1].joined() == "No title here."


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", "\n" + jsonl({"_id": "a", "text": "x"}) + "\n\n" + "{oops\n")
    error = input_error(path)
    assert f"{path}:5:" in str(error)


def test_msmarco_two_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "collection.tsv", "0\tThe first passage.\n1\tThe second one.\n")
    assert detect_corpus_format(path) is CorpusFormat.msmarco
    assert ids(path) == [("0", "", "The first passage."), ("1", "", "The second one.")]


def test_msmarco_three_columns_are_id_title_text(tmp_path: Path) -> None:
    path = write(tmp_path / "collection.tsv", "0\tTitle zero\tText zero.\n1\tTitle one\tText one.\n")
    assert ids(path) == [("0", "Title zero", "Text zero."), ("1", "Title one", "Text one.")]


def test_dpr_header_swaps_title_and_text(tmp_path: Path) -> None:
    path = write(tmp_path / "psgs_w100.tsv", "id\ttext\ttitle\n1\tAaron is a prophet.\tAaron\n2\tMoses too.\tMoses\n")
    passages = list(iter_corpus(path))
    assert [(p.id, p.title, p.text, p.line) for p in passages] == [
        ("1", "Aaron", "Aaron is a prophet.", 2),
        ("2", "Moses", "Moses too.", 3),
    ]


def test_tsv_without_tsv_extension_is_detected_by_content(tmp_path: Path) -> None:
    path = write(tmp_path / "collection.data", "0\tplain text\n")
    assert detect_corpus_format(path) is CorpusFormat.msmarco
    assert ids(path) == [("0", "", "plain text")]


def test_pyserini(tmp_path: Path) -> None:
    path = write(
        tmp_path / "docs.jsonl",
        jsonl({"id": "p1", "contents": "Pyserini contents."}, {"id": "p2", "contents": "More.", "title": "T"}),
    )
    assert detect_corpus_format(path) is CorpusFormat.pyserini
    assert ids(path) == [("p1", "", "Pyserini contents."), ("p2", "T", "More.")]


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("corpus.jsonl.gz", jsonl({"_id": "d1", "title": "T", "text": "x"}), [("d1", "T", "x")]),
        ("collection.tsv.gz", "0\tzero\n1\tone\n", [("0", "", "zero"), ("1", "", "one")]),
        ("docs.jsonl.gz", jsonl({"id": "p1", "contents": "c"}), [("p1", "", "c")]),
    ],
)
def test_gzip_is_read_transparently(tmp_path: Path, name: str, text: str, expected: list) -> None:
    path = write(tmp_path / name, text)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert ids(path) == expected


def test_forced_format_overrides_detection(tmp_path: Path) -> None:
    # A TSV corpus in a file named .jsonl: detection reads the content; forcing beir makes it a JSON error.
    path = write(tmp_path / "corpus.jsonl", "0\tzero\n")
    assert ids(path) == [("0", "", "zero")]
    assert ids(path, CorpusFormat.msmarco) == [("0", "", "zero")]
    error = input_error(path, CorpusFormat.beir)
    assert f"{path}:1:" in str(error) and "malformed JSON" in str(error)


def test_forcing_beir_on_a_pyserini_file_names_the_missing_field(tmp_path: Path) -> None:
    path = write(tmp_path / "docs.jsonl", jsonl({"id": "p1", "contents": "c"}))
    error = input_error(path, CorpusFormat.beir)
    assert str(error) == f"{path}:1: field '_id': missing"
    assert (error.line, error.field) == (1, "_id")


def test_duplicates_may_be_allowed(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", "1\ta\n1\tb\n")
    assert [p.text for p in iter_corpus(path, check_duplicates=False)] == ["a", "b"]


def test_passage_joined_without_title() -> None:
    assert Passage("x", "", "text", 1).joined() == "text"
    assert Passage("x", "Title", "text", 1).joined() == "Title text"


# -- bad input: every error names the file, the line and (where there is one) the field ------------------------
GOOD = {"_id": "d1", "title": "t", "text": "x"}


def test_malformed_json_line(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", jsonl(GOOD, {"_id": "d2", "text": "y"}) + '{"_id": "d3", "text": \n')
    error = input_error(path)
    assert str(error).startswith(f"{path}:3: malformed JSON")
    assert error.line == 3


def test_first_line_malformed_json_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", '{"_id": "d1", \n')
    error = input_error(path)
    assert str(error).startswith(f"{path}") and "JSON" in str(error)


def test_first_line_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", '{"_id": "d1", \n')
    assert str(input_error(path)).startswith(f"{path}:1: ")


def test_missing_id(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", jsonl(GOOD, {"title": "t", "text": "no id"}))
    error = input_error(path)
    assert str(error) == f"{path}:2: field '_id': missing"


def test_missing_text(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", jsonl(GOOD, {"_id": "d2", "title": "t"}))
    assert str(input_error(path)) == f"{path}:2: field 'text': missing"


def test_missing_pyserini_contents(tmp_path: Path) -> None:
    path = write(tmp_path / "docs.jsonl", jsonl({"id": "p1", "contents": "c"}, {"id": "p2", "body": "c"}))
    assert str(input_error(path)) == f"{path}:2: field 'contents': missing"


@pytest.mark.parametrize(
    "record, field, words",
    [
        ({"_id": "d2", "text": ["a", "list"]}, "text", "expected a string"),
        ({"_id": True, "text": "x"}, "_id", "expected a string"),
        ({"_id": "d2", "title": {"a": 1}, "text": "x"}, "title", "expected a string"),
        ({"_id": "   ", "text": "x"}, "_id", "empty id"),
        ({"_id": "d 2", "text": "x"}, "_id", "white space"),
    ],
)
def test_bad_field_values(tmp_path: Path, record: dict, field: str, words: str) -> None:
    path = write(tmp_path / "corpus.jsonl", jsonl(GOOD, record))
    error = input_error(path)
    assert str(error).startswith(f"{path}:2: field '{field}': ")
    assert words in str(error)


def test_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", jsonl(GOOD) + '["_id", "d2"]\n')
    assert str(input_error(path)) == f"{path}:2: expected a JSON object"


def test_duplicate_id(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", jsonl(GOOD, {"_id": "d2", "text": "y"}, {"_id": "d1", "text": "again"}))
    error = input_error(path)
    assert str(error) == f"{path}:3: duplicate id 'd1'"


def test_duplicate_id_in_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "collection.tsv", "1\ta\n2\tb\n1\tc\n")
    assert str(input_error(path)) == f"{path}:3: duplicate id '1'"


@pytest.mark.parametrize("name, content", [("corpus.jsonl", ""), ("corpus.jsonl", "\n  \n"), ("c.tsv", "\n")])
def test_empty_corpus(tmp_path: Path, name: str, content: str) -> None:
    path = write(tmp_path / name, content)
    error = input_error(path)
    assert str(error) == f"{path}: empty corpus: no passages"


def test_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl", jsonl(GOOD).encode() + b'{"_id": "d2", "text": "caf\xe9"}\n')
    error = input_error(path)
    assert str(error).startswith(f"{path}:2: invalid UTF-8")


def test_invalid_utf8_in_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl.gz", jsonl(GOOD, GOOD | {"_id": "d2"}).encode() + b'{"_id": "\xff"}\n')
    assert str(input_error(path)).startswith(f"{path}:3: invalid UTF-8")


def test_tsv_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "collection.tsv", "1\ta\n2\tb\tc\td\n")
    assert str(input_error(path)) == f"{path}:2: expected 2 or 3 tab-separated columns, got 4"


def test_tsv_id_with_space(tmp_path: Path) -> None:
    path = write(tmp_path / "collection.tsv", "1\ta\nx y\tb\n")
    error = input_error(path)
    assert str(error).startswith(f"{path}:2: field 'pid': ")


def test_missing_file(tmp_path: Path) -> None:
    error = input_error(tmp_path / "absent.jsonl")
    assert str(tmp_path / "absent.jsonl") in str(error) and "no such file" in str(error)


@pytest.mark.parametrize("space", ["\u00a0", "\u2028", "\x0b", "\x1c", "\u3000"])
def test_ids_with_unicode_white_space_are_refused_at_the_first_command(tmp_path: Path, space: str) -> None:
    """`encode` took 'd\\u00a02', then `evaluate` and `mine` refused the run `search` wrote from it ("expected 6
    columns"), since run readers split on any white space (issue 10, item 7)."""
    beir = write(tmp_path / "c.jsonl", jsonl({"_id": "d1", "text": "x"}, {"_id": f"d{space}2", "text": "y"}))
    with pytest.raises(InputError, match=r"c.jsonl:2: field '_id': id .* contains white space"):
        list(iter_corpus(beir))
    tsv = write(tmp_path / "c.tsv", f"1\tx\n2{space}3\ty\n")
    with pytest.raises(InputError, match=r"c.tsv:2: field 'pid': id .* contains white space"):
        list(iter_corpus(tsv))


def test_stream_ids_with_white_space_are_refused_by_index(tmp_path: Path) -> None:
    """A stream from another tool (or an older simlm) meets the same rule in `simlm index` (issue 10, item 7)."""
    import io

    import numpy as np

    from simlm_cli.index.dense import build_dense_index
    from simlm_cli.io.embeddings import EmbeddingReader, EmbeddingWriter, StreamHeader
    from simlm_cli.options.index import BuildOptions

    buffer = io.BytesIO()
    writer = EmbeddingWriter(buffer, StreamHeader(dim=4, dtype="float32", encoder={"model": "m"}))
    writer.write(["d1", "d\u20282"], np.ones((2, 4), dtype=np.float32))
    writer.close()
    buffer.seek(0)
    with pytest.raises(InputError, match=r"x.emb: document id 'd\\u20282' is empty or holds white space"):
        build_dense_index([EmbeddingReader(buffer, "x.emb")], tmp_path / "idx", BuildOptions())
    assert not (tmp_path / "idx").exists()
