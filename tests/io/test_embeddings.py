"""simlm_cli.io.embeddings: the block stream between `encode` and `index`, and how it fails when cut short."""

from __future__ import annotations

import io
import json
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


# -- issue 10: poisoned numbers, joined streams, odd headers ------------------------------------------------------
def test_bytes_after_the_end_marker_are_refused() -> None:
    """`cat a.emb b.emb | simlm index` used to index a.emb alone, with exit 0 (issue 10, item 4)."""
    reader = EmbeddingReader(io.BytesIO(stream() + stream()), "<stdin>")
    with pytest.raises(InputError, match="bytes after the stream's end marker .* two streams joined"):
        list(reader)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_vector_is_refused_with_its_position(bad: float) -> None:
    """A NaN vector scores NaN against every query (issue 10, item 3)."""
    parts = blocks()
    parts[1][1][0, 3] = bad  # the 4th vector of the stream
    reader = EmbeddingReader(io.BytesIO(stream(parts)), "x.emb")
    with pytest.raises(InputError, match=r"x.emb: vector 4 \(id 'doc-3'\) holds a non-finite value"):
        list(reader)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dim": -5}, "dim -5 is not a positive integer"),
        ({"dim": "384"}, "dim '384' is not a positive integer"),
        ({"dim": True}, "dim True is not a positive integer"),
        ({"encoder": "bert"}, "encoder 'bert' is not an object"),
        ({"shard_id": "0"}, "shard_id and num_shards must be integers"),
        ({"precision": "fp64"}, "precision 'fp64' is not one of fp32, bf16, fp16, int8"),
        ({"backend": "onnx"}, "backend 'onnx' is not one of torch, openvino"),
    ],
)
def test_a_header_of_the_wrong_types_is_one_error(changes: dict, message: str) -> None:
    """Issue 10, item 8: these raised tracebacks (a negative read size, str * int)."""
    values = header().to_json() | changes
    payload = json.dumps(values).encode()
    data = MAGIC + struct.pack("<I", len(payload)) + payload + b"E" + struct.pack("<Q", 0)
    with pytest.raises(InputError, match=f"x.emb: .*{message}"):
        EmbeddingReader(io.BytesIO(data), "x.emb")


def test_a_stream_from_before_the_backend_was_recorded_reads() -> None:
    values = {k: v for k, v in header(precision="fp32").to_json().items() if k != "backend"}
    payload = json.dumps(values).encode()
    data = MAGIC + struct.pack("<I", len(payload)) + payload + b"E" + struct.pack("<Q", 0)
    reader = EmbeddingReader(io.BytesIO(data), "x.emb")
    assert (reader.header.precision, reader.header.backend) == ("fp32", "")


def test_damaged_magic_says_so_rather_than_naming_the_same_version() -> None:
    """It said 'version 1 is not supported (expected 1)' (issue 10, item 14)."""
    damaged = stream().replace(MAGIC, MAGIC[:10] + b"\r", 1)
    with pytest.raises(InputError, match="magic bytes are damaged") as caught:
        EmbeddingReader(io.BytesIO(damaged), "x.emb")
    assert "expected 1" not in str(caught.value)
    newer = stream().replace(MAGIC, MAGIC[:9] + b"\x02\n", 1)
    with pytest.raises(InputError, match=r"version 2 is not supported \(expected 1\)"):
        EmbeddingReader(io.BytesIO(newer), "x.emb")


def test_a_fifo_is_read_as_a_stream(tmp_path: Path) -> None:
    """`simlm index <(simlm encode ...)` names /dev/fd/N, not a regular file (issue 10, item 5)."""
    import os
    import threading

    fifo = tmp_path / "pipe.emb"
    os.mkfifo(fifo)
    data = stream()
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    handle, name = open_stream(fifo)
    with handle:
        assert sum(len(ids) for ids, _ in EmbeddingReader(handle, name)) == 9
    writer.join(5)


# -- issue 21, item 4: sizes a damaged stream claims ----------------------------------------------------------------
def _with_header(changes: dict, rest: bytes = b"") -> bytes:
    payload = json.dumps(header().to_json() | changes).encode()
    return MAGIC + struct.pack("<I", len(payload)) + payload + rest


def test_a_header_dim_past_the_maximum_is_one_error_before_any_allocation() -> None:
    """dim 10**12 was a MemoryError on the first block (n * dim * 4 bytes read at once)."""
    block = b"B" + struct.pack("<II", 1, 2) + b"d1" + b"\0" * 16
    with pytest.raises(
        InputError, match="x.emb: corrupt stream header: dim 1000000000000 is over simlm's maximum of 65536"
    ):
        EmbeddingReader(io.BytesIO(_with_header({"dim": 10**12}, block)), "x.emb")


def test_the_maximum_dim_itself_is_read() -> None:
    reader = EmbeddingReader(io.BytesIO(_with_header({"dim": 65_536})), "x.emb")
    assert reader.header.dim == 65_536


class _LargestRead(io.BytesIO):
    """A stream that records the largest read asked of it (a file's read(n) allocates n bytes up front)."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:
        self.largest = max(self.largest, size or 0)
        return super().read(size)


def test_a_block_claiming_gigabytes_is_truncated_without_asking_for_them() -> None:
    """A damaged block header (4 GiB of ids) ends as a truncated stream, read in chunks of at most 64 MiB."""
    data = stream()
    first_block = data.index(b"B", len(MAGIC) + 4)
    handle = _LargestRead(data[:first_block] + b"B" + struct.pack("<II", 3, 2**32 - 1) + data[first_block + 9 :])
    reader = EmbeddingReader(handle, "emb")
    with pytest.raises(InputError, match="truncated"):
        list(reader)
    assert handle.largest <= 1 << 26


def test_a_deeply_nested_header_is_one_error() -> None:
    payload = b"[" * 10_000
    data = MAGIC + struct.pack("<I", len(payload)) + payload
    with pytest.raises(InputError, match="x.emb: JSON nested deeper than 100 levels"):
        EmbeddingReader(io.BytesIO(data), "x.emb")
