"""simlm_cli.io.embeddings: the block stream between `encode` and `index`, and how it fails when cut short."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from simlm_cli.errors import InputError
from simlm_cli.io.embeddings import MAGIC, EmbeddingReader, EmbeddingWriter, StreamHeader, open_stream

DIM = 8
ENCODER = {"model": "/models/tiny", "pooling": "cls", "normalize": True}


def header(**changes) -> StreamHeader:
    values = {"dim": DIM, "dtype": "float32", "encoder": ENCODER, "shard_id": 1, "num_shards": 3, "corpus": "c.jsonl"}
    return StreamHeader(**(values | changes))


def blocks(sizes=(3, 1, 5)) -> list[tuple[list[str], np.ndarray]]:
    rng = np.random.default_rng(0)
    out, n = [], 0
    for size in sizes:
        out.append(([f"doc-{n + i}" for i in range(size)], rng.standard_normal((size, DIM)).astype(np.float32)))
        n += size
    return out


def stream(parts=None, close: bool = True, **changes) -> bytes:
    buffer = io.BytesIO()
    writer = EmbeddingWriter(buffer, header(**changes))
    for ids, vectors in blocks() if parts is None else parts:
        writer.write(ids, vectors)
    if close:
        writer.close()
    return buffer.getvalue()


def read_all(data: bytes) -> tuple[EmbeddingReader, list[tuple[list[str], np.ndarray]]]:
    reader = EmbeddingReader(io.BytesIO(data), "emb")
    return reader, list(reader)


def read_error(data: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        read_all(data)
    return caught.value


def test_round_trip_over_several_blocks() -> None:
    reader, got = read_all(stream())
    assert reader.header == header()
    assert reader.count == 9
    expected = blocks()
    assert [ids for ids, _ in got] == [ids for ids, _ in expected]
    for (_, vectors), (_, want) in zip(got, expected):
        assert vectors.dtype == np.float32
        np.testing.assert_array_equal(vectors, want)


def test_float16_round_trip() -> None:
    reader, got = read_all(stream(dtype="float16"))
    assert reader.header.dtype == "float16"
    for (_, vectors), (_, want) in zip(got, blocks()):
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(vectors, want, rtol=1e-3, atol=1e-3)


def test_empty_blocks_are_skipped_and_ids_may_be_unicode() -> None:
    parts = [([], np.zeros((0, DIM), np.float32)), (["é1", "文2"], np.ones((2, DIM), np.float32))]
    reader, got = read_all(stream(parts))
    assert [ids for ids, _ in got] == [["é1", "文2"]]
    assert reader.count == 2


def test_header_layout() -> None:
    data = stream()
    assert data.startswith(MAGIC)
    assert data[-9:] == b"E" + struct.pack("<Q", 9)


def test_writer_checks_shapes() -> None:
    writer = EmbeddingWriter(io.BytesIO(), header())
    with pytest.raises(ValueError):
        writer.write(["a", "b"], np.zeros((1, DIM), np.float32))
    with pytest.raises(ValueError):
        writer.write(["a"], np.zeros((1, DIM + 1), np.float32))
    with pytest.raises(ValueError):
        EmbeddingWriter(io.BytesIO(), header(dtype="int8"))


# -- truncated and corrupt streams -----------------------------------------------------------------------------
def test_missing_end_marker_is_truncated() -> None:
    error = read_error(stream(close=False))
    assert "truncated" in str(error) and str(error).startswith("emb: ")


@pytest.mark.parametrize("cut", [1, 4, 8, 9])
def test_cut_off_the_end_is_truncated(cut: int) -> None:
    assert "truncated" in str(read_error(stream()[:-cut]))


def test_cut_mid_block_is_truncated() -> None:
    data = stream()
    end_of_first_block = len(stream(blocks((3,)), close=False))
    for cut in (end_of_first_block + 3, end_of_first_block + 20, len(data) - 20):
        assert "truncated" in str(read_error(data[:cut])), cut


def test_cut_inside_the_header_is_truncated() -> None:
    data = stream()
    for cut in (0, 5, len(MAGIC) + 2, len(MAGIC) + 10):
        with pytest.raises(InputError, match="truncated"):
            EmbeddingReader(io.BytesIO(data[:cut]), "emb")


def test_wrong_magic() -> None:
    with pytest.raises(InputError, match="not a simlm embedding stream"):
        EmbeddingReader(io.BytesIO(b"\x93NUMPY\x01\x00" + b"\x00" * 100), "emb")


def test_unsupported_version() -> None:
    data = stream()
    with pytest.raises(InputError, match="version 2 is not supported"):
        EmbeddingReader(io.BytesIO(data[:9] + b"\x02" + data[10:]), "emb")


def test_corrupt_header_json() -> None:
    payload = b"{not json"
    data = MAGIC + struct.pack("<I", len(payload)) + payload
    with pytest.raises(InputError, match="corrupt stream header"):
        EmbeddingReader(io.BytesIO(data), "emb")


def test_end_marker_count_mismatch() -> None:
    data = stream()
    bad = data[:-8] + struct.pack("<Q", 10)
    assert "end marker says 10 vectors" in str(read_error(bad))


def test_unexpected_byte_between_blocks() -> None:
    data = stream()
    bad = data[:-9] + b"X" + data[-8:]
    assert "corrupt stream" in str(read_error(bad))


def test_open_stream(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such embedding file"):
        open_stream(tmp_path / "absent.emb")
    path = tmp_path / "x.emb"
    path.write_bytes(stream())
    handle, name = open_stream(path)
    with handle:
        assert name == str(path)
        assert EmbeddingReader(handle, name).header.dim == DIM
