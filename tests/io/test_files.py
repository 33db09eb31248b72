"""simlm_cli.io.files: line reading (UTF-8, .gz, stdin), and atomic outputs that never leave partial files."""

from __future__ import annotations

import gzip
import os
import re
import stat
from pathlib import Path

import pytest

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.files import (
    atomic_directory,
    atomic_output,
    check_replaceable,
    count_lines,
    first_content_line,
    iter_lines,
    model_write,
    open_binary,
)


def siblings(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- reading ---------------------------------------------------------------------------------------------------
def test_iter_lines_numbers_lines_and_strips_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"one\r\ntwo\n\nfour")
    assert list(iter_lines(path)) == [(1, "one"), (2, "two"), (3, ""), (4, "four")]


def test_iter_lines_reads_gzip_transparently(tmp_path: Path) -> None:
    path = tmp_path / "a.txt.gz"
    path.write_bytes(gzip.compress("één\ntwo\n".encode()))
    assert list(iter_lines(path)) == [(1, "één"), (2, "two")]


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(InputError) as caught:
        list(iter_lines(path))
    assert f"{path}:3:" in str(caught.value)
    assert "UTF-8" in str(caught.value)
    assert caught.value.line == 3


def test_truncated_gzip_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt.gz"
    data = gzip.compress(b"".join(b"line %d\n" % i for i in range(5000)))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read"):
        list(iter_lines(path))


def _corrupt_gzip(path: Path) -> Path:
    data = bytearray(gzip.compress(b"".join(b'{"_id": "d%d", "text": "hello %d"}\n' % (i, i) for i in range(2000))))
    for j in range(40, 60):
        data[j] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_corrupt_gzip_is_an_input_error(tmp_path: Path) -> None:
    path = _corrupt_gzip(tmp_path / "corrupt.txt.gz")
    with pytest.raises(InputError):
        list(iter_lines(path))


def test_count_lines_of_truncated_gzip_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt.gz"
    data = gzip.compress(b"".join(b"line %d\n" % i for i in range(5000)))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        count_lines(path)


def test_open_binary_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file") as caught:
        open_binary(tmp_path / "absent.txt")
    assert str(tmp_path / "absent.txt") in str(caught.value)
    with pytest.raises(InputError, match="is a directory"):
        open_binary(tmp_path)


def test_first_content_line_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("\n   \nfirst\nsecond\n")
    assert first_content_line(path) == (3, "first")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert first_content_line(empty) is None


def test_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.txt.gz"
    path.write_bytes(gzip.compress(b"a\nb\nc\n"))
    assert count_lines(path) == 3
    assert count_lines("-") == 0


# -- atomic_output ---------------------------------------------------------------------------------------------
def test_atomic_output_writes_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_output(target) as handle:
        handle.write("héllo\n")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert siblings(target.parent) == ["out.txt"]


def test_atomic_output_binary_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic_output(target, "wb") as handle:
        handle.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_atomic_output_leaves_nothing_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write("partial")
        raise RuntimeError("boom")
    assert siblings(tmp_path) == []


def test_atomic_output_keeps_an_earlier_file_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("earlier")
    with pytest.raises(InputError), atomic_output(target) as handle:
        handle.write("partial")
        raise InputError("x", "bad input")
    assert target.read_text() == "earlier"
    assert siblings(tmp_path) == ["out.txt"]


def test_atomic_output_cleans_up_on_keyboard_interrupt(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as handle:
        handle.write("partial")
        raise KeyboardInterrupt
    assert siblings(tmp_path) == []


def test_atomic_output_replaces_an_earlier_file_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("earlier")
    with atomic_output(target) as handle:
        handle.write("new")
    assert target.read_text() == "new"
    assert siblings(tmp_path) == ["out.txt"]


def test_atomic_output_respects_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.txt") as handle:
            handle.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


# -- atomic_directory ------------------------------------------------------------------------------------------
def test_atomic_directory_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
        assert not target.exists()
    assert siblings(target) == ["a"]
    with atomic_directory(target) as tmp:
        (tmp / "b").write_text("2")
    assert siblings(target) == ["b"]
    assert siblings(tmp_path) == ["idx"]


def test_atomic_directory_leaves_nothing_on_failure_and_keeps_an_earlier_one(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
        raise RuntimeError("boom")
    assert siblings(tmp_path) == []
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
        raise RuntimeError("boom")
    assert siblings(tmp_path) == ["idx"]
    assert siblings(target) == ["old"]


def test_atomic_directory_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    target.write_text("not a directory")
    with pytest.raises(SimlmError, match="not a directory"), atomic_directory(target):
        pass
    assert target.read_text() == "not a directory"


def test_atomic_directory_with_a_marker_replaces_only_what_it_made(tmp_path: Path) -> None:
    """`--output` naming a directory the user keeps other things in must not delete it."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(SimlmError, match="not one simlm wrote"), atomic_directory(theirs, marker="meta.json"):
        pass
    assert siblings(theirs) == ["notes.txt"] and siblings(tmp_path) == ["theirs"]
    with pytest.raises(SimlmError, match="not one simlm wrote"):
        check_replaceable(theirs, "meta.json")
    ours = tmp_path / "ours"
    for setup in (lambda: ours.mkdir(), lambda: (ours / "meta.json").write_text("{}")):  # empty, then simlm's own
        setup()
        check_replaceable(ours, "meta.json")
        with atomic_directory(ours, marker="meta.json") as tmp:
            (tmp / "meta.json").write_text("{}")
        assert siblings(ours) == ["meta.json"]


# -- stdin -----------------------------------------------------------------------------------------------------
class _Stdin:
    def __init__(self, data: bytes):
        import io

        self.buffer = io.BytesIO(data)


def test_stdin_lines_read_by_format_detection_are_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin cannot rewind: what a detecting peek read goes to the reader after it, once."""
    from simlm_cli.io.corpus import iter_corpus

    monkeypatch.setattr("sys.stdin", _Stdin(b'\n{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"}\n'))
    assert [p.id for p in iter_corpus("-")] == ["a", "b"]


def test_first_content_line_then_iter_lines_on_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", _Stdin(b"one\ntwo\nthree\n"))
    assert first_content_line("-") == (1, "one")
    assert first_content_line("-") == (1, "one")  # a second peek sees the same start
    assert list(iter_lines("-")) == [(1, "one"), (2, "two"), (3, "three")]


# -- issue 10: another tool's meta.json, read-once inputs, byte-order marks ------------------------------------
def test_a_directory_with_someone_elses_meta_json_is_not_replaced(tmp_path: Path) -> None:
    """Any JSON file named meta.json made a directory replaceable: `simlm index --output x` deleted the user's
    files beside it (issue 10, item 1). Only a meta.json of simlm's own kinds counts."""
    from simlm_cli.index import DENSE_KIND, META_FILE, is_index_dir

    theirs = tmp_path / "x"
    (theirs / "data").mkdir(parents=True)
    (theirs / "meta.json").write_text('{"name": "mine"}')
    (theirs / "p.txt").write_text("precious")
    with pytest.raises(SimlmError, match="not one simlm wrote .*meta.json is not simlm's"):
        check_replaceable(theirs, META_FILE, is_index_dir)
    refused = pytest.raises(SimlmError, match="not one simlm wrote")
    with refused, atomic_directory(theirs, marker=META_FILE, owned=is_index_dir) as tmp:
        (tmp / META_FILE).write_text("{}")
    assert siblings(theirs) == ["data", "meta.json", "p.txt"] and siblings(tmp_path) == ["x"]
    (theirs / "meta.json").write_text(f'{{"kind": "{DENSE_KIND}"}}')  # simlm's own: replaceable
    check_replaceable(theirs, META_FILE, is_index_dir)


def _fifo(tmp_path: Path, data: bytes) -> tuple[Path, object]:
    import threading

    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True)
    writer.start()
    return fifo, writer


def test_a_fifo_corpus_is_detected_then_read_whole(tmp_path: Path) -> None:
    """`--corpus <(zcat c.jsonl.gz)`: format detection read the pipe, the reader found it empty ("empty corpus"),
    and a FIFO hung on its second open (issue 10, item 5). A read-once input is opened once and replayed."""
    from simlm_cli.io.corpus import iter_corpus

    fifo, writer = _fifo(tmp_path, b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"}\n')
    assert count_lines(fifo) == 0  # a progress total must not consume the pipe
    assert [p.id for p in iter_corpus(fifo)] == ["a", "b"]
    writer.join(5)


def test_a_fifo_run_is_detected_then_read_whole(tmp_path: Path) -> None:
    """`evaluate --run <(...)` said "empty run" (issue 10, item 5)."""
    from simlm_cli.io.runs import read_run

    fifo, writer = _fifo(tmp_path, b"q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 0.5 t\n")
    assert read_run(fifo).scores == {"q1": {"d1": 0.9, "d2": 0.5}}
    writer.join(5)


BOM = "\ufeff".encode()


def test_a_byte_order_mark_is_dropped_everywhere_text_is_read(tmp_path: Path) -> None:
    """A BOM made a BEIR .jsonl look like TSV, and a TSV corpus's first id '\\ufeff1' (issue 10, item 6)."""
    from simlm_cli.io.corpus import CorpusFormat, detect_corpus_format, iter_corpus
    from simlm_cli.io.qrels import read_qrels
    from simlm_cli.io.queries import read_queries
    from simlm_cli.io.runs import read_run

    beir = tmp_path / "corpus.jsonl"
    beir.write_bytes(BOM + b'{"_id": "a", "text": "x"}\n')
    assert detect_corpus_format(beir) is CorpusFormat.beir and [p.id for p in iter_corpus(beir)] == ["a"]
    tsv = tmp_path / "corpus.tsv"
    tsv.write_bytes(BOM + b"1\tone\n2\ttwo\n")
    assert [p.id for p in iter_corpus(tsv)] == ["1", "2"]
    queries = tmp_path / "queries.jsonl"
    queries.write_bytes(BOM + b'{"_id": "q1", "text": "t"}\n')
    assert read_queries(queries) == {"q1": "t"}
    qrels = tmp_path / "qrels.tsv"
    qrels.write_bytes(BOM + b"query-id\tcorpus-id\tscore\nq1\ta\t1\n")
    assert read_qrels(qrels).judgments == {"q1": {"a": 1}}
    run = tmp_path / "run.trec"
    run.write_bytes(BOM + b"q1 Q0 a 1 0.9 t\n")
    assert read_run(run).scores == {"q1": {"a": 0.9}}
    gz = tmp_path / "corpus.jsonl.gz"
    gz.write_bytes(gzip.compress(BOM + b'{"_id": "a", "text": "x"}\n'))
    assert [p.id for p in iter_corpus(gz)] == ["a"]


def test_an_unwritable_place_is_reported_by_the_users_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error named the internal temporary file (issue 10, item 12)."""
    import tempfile

    from simlm_cli.io.files import check_output_file

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".run.trec.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as caught, atomic_output(tmp_path / "run.trec") as handle:
        handle.write("x")
    assert caught.value.filename == str(tmp_path / "run.trec")
    (tmp_path / "d").mkdir()
    with pytest.raises(SimlmError, match="is a directory; --output names a file"):
        check_output_file(tmp_path / "d")
    check_output_file(tmp_path / "new" / "deeper" / "run.trec")  # directories to be made are fine
    check_output_file(None)


def test_model_write_turns_a_libraries_short_write_into_one_line(tmp_path: Path) -> None:
    """What torch.save and safetensors raise on a full disk becomes one line naming the target and the free space;
    an OSError (printed by the CLI as it is) and simlm's own errors pass unchanged."""
    target = tmp_path / "not-yet" / "model"
    with pytest.raises(SimlmError) as caught, model_write(target, "the model"):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534\nmore")
    assert re.fullmatch(
        rf"{re.escape(str(target))}: cannot write the model \(RuntimeError: \[enforce fail at inline_container.cc:672\] "
        r"\. unexpected pos 576 vs 534\); [\d,]+ MiB free on its disk",
        str(caught.value),
    ), caught.value
    for passed in (OSError(28, "No space left on device"), InputError(target, "bad")):
        with pytest.raises(type(passed)) as caught, model_write(target, "the model"):
            raise passed
        assert caught.value is passed
