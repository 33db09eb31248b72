"""The embedding stream: how `simlm encode` hands ids and vectors to `simlm index`, through a pipe or a file.

Layout (all integers little-endian):

    magic    b"SIMLM-EMB\\x01\\n"              11 bytes, the last-but-one byte is the format version
    header   uint32 length + UTF-8 JSON      what made the vectors: model, pooling, normalize, dim, dtype, ...
    block*   b"B" + uint32 n + uint32 m      n vectors; m bytes of ids follow
             ids: m bytes, UTF-8, '\\n'-joined (ids never contain white space)
             vectors: n * dim values of `dtype`, row-major
    end      b"E" + uint64 total             total vectors in the stream; absent = truncated stream; nothing may
                                             follow it (concatenated streams are refused, not half-read)

Blocks let the writer flush as it encodes (a stream, never the corpus in memory) and cost a few bytes per
thousand vectors. The end marker lets a reader tell a finished stream from one whose writer died: `simlm index`
refuses a truncated stream instead of indexing part of a corpus.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from simlm_cli.device import Backend, Precision
from simlm_cli.errors import InputError
from simlm_cli.io import json_input

MAGIC = b"SIMLM-EMB\x01\n"
_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
# The widest vectors a stream may hold: 16x the largest encoders' (4096-d); beyond, a header is taken as corrupt.
MAX_DIM = 65_536
_READ_CHUNK = 1 << 26
# what computed a stream's vectors; "" in streams from before it was recorded
PRECISIONS = ("", *(p.value for p in Precision if p is not Precision.auto))
BACKENDS = ("", *(b.value for b in Backend if b is not Backend.auto))


@dataclass
class StreamHeader:
    dim: int
    dtype: str
    encoder: dict[str, Any]  # model, pooling, normalize, lengths, passage format: how to encode queries alike
    shard_id: int = 0
    num_shards: int = 1
    corpus: str = ""
    dry_run: bool = False  # made by `encode --dry-run`: a few passages, not the corpus
    precision: str = ""  # fp32, bf16, fp16 or int8: what computed the vectors ("" in streams from before it was kept)
    backend: str = ""  # torch or openvino: what ran the model ("" in streams from before it was kept)

    def to_json(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "dtype": self.dtype,
            "encoder": self.encoder,
            "shard_id": self.shard_id,
            "num_shards": self.num_shards,
            "corpus": self.corpus,
            "dry_run": self.dry_run,
            "precision": self.precision,
            "backend": self.backend,
        }


class EmbeddingWriter:
    """Writes a stream; call `close()` only on success, so a failed run never gets an end marker."""

    def __init__(self, handle: IO[bytes], header: StreamHeader):
        if header.dtype not in _DTYPES:
            raise ValueError(f"unsupported dtype {header.dtype}")
        self._handle = handle
        self._dtype = _DTYPES[header.dtype]
        self._dim = header.dim
        self.count = 0
        payload = json.dumps(header.to_json(), sort_keys=True).encode("utf-8")
        handle.write(MAGIC + struct.pack("<I", len(payload)) + payload)

    def write(self, ids: list[str], vectors: np.ndarray) -> None:
        if len(ids) != len(vectors) or vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise ValueError(f"block of {len(ids)} ids with vectors of shape {vectors.shape}")
        if not ids:
            return
        id_bytes = "\n".join(ids).encode("utf-8")
        body = np.ascontiguousarray(vectors, dtype=self._dtype).tobytes()
        self._handle.write(b"B" + struct.pack("<II", len(ids), len(id_bytes)) + id_bytes + body)
        self.count += len(ids)

    def close(self) -> None:
        self._handle.write(b"E" + struct.pack("<Q", self.count))
        self._handle.flush()


class EmbeddingReader:
    """Reads one stream: `header`, then iterate for (ids, vectors) blocks; checks the end marker."""

    def __init__(self, handle: IO[bytes], name: str):
        self._handle = handle
        self.name = name
        magic = self._read(len(MAGIC), "the stream's magic bytes")
        if magic != MAGIC:
            if magic[:9] == MAGIC[:9] and magic[9] != MAGIC[9]:
                raise InputError(name, f"embedding stream version {magic[9]} is not supported (expected {MAGIC[9]})")
            if magic[:10] == MAGIC[:10]:
                raise InputError(name, "corrupt stream: its magic bytes are damaged")
            raise InputError(name, "not a simlm embedding stream (write one with `simlm encode`)")
        (length,) = struct.unpack("<I", self._read(4, "the header"))
        try:
            meta = json_input.loads(self._read(length, "the header"), name)
            self.header = StreamHeader(**meta)
        except (ValueError, TypeError) as err:
            raise InputError(name, f"corrupt stream header ({err})") from None
        _check_header(name, self.header)
        self._dtype = _DTYPES[self.header.dtype]
        self.count = 0

    def _read(self, size: int, what: str) -> bytes:
        # In chunks: a damaged block header can claim gigabytes; read what is there, never allocate what is claimed.
        data = self._handle.read(min(size, _READ_CHUNK))
        if size > _READ_CHUNK and len(data) == _READ_CHUNK:
            buffer = bytearray(data)
            while len(buffer) < size and (part := self._handle.read(min(_READ_CHUNK, size - len(buffer)))):
                buffer += part
            data = bytes(buffer)
        if len(data) != size:
            raise InputError(self.name, f"stream ends inside {what}: truncated (did `simlm encode` stop early?)")
        return data

    def __iter__(self) -> Iterator[tuple[list[str], np.ndarray]]:
        dim = self.header.dim
        while True:
            tag = self._handle.read(1)
            if tag == b"E":
                (total,) = struct.unpack("<Q", self._read(8, "the end marker"))
                if total != self.count:
                    raise InputError(self.name, f"end marker says {total} vectors, the stream held {self.count}")
                if self._handle.read(1):
                    # `cat a.emb b.emb | simlm index` would otherwise index a.emb alone, silently.
                    raise InputError(
                        self.name,
                        f"bytes after the stream's end marker (after {self.count} vectors): two streams joined "
                        "with cat? Name each file: `simlm index a.emb b.emb`",
                    )
                return
            if tag != b"B":
                if not tag:
                    raise InputError(
                        self.name,
                        "stream ends without its end marker: truncated (did `simlm encode` stop early?)",
                    )
                raise InputError(self.name, f"corrupt stream: unexpected byte {tag!r} after {self.count} vectors")
            n, id_len = struct.unpack("<II", self._read(8, "a block header"))
            try:
                ids = self._read(id_len, "a block's ids").decode("utf-8").split("\n")
            except UnicodeDecodeError:
                raise InputError(self.name, f"corrupt block: ids are not UTF-8 (after {self.count} vectors)") from None
            if len(ids) != n:
                raise InputError(self.name, f"corrupt block: {len(ids)} ids for {n} vectors")
            raw = self._read(n * dim * self._dtype.itemsize, "a block's vectors")
            vectors = np.frombuffer(raw, dtype=self._dtype).reshape(n, dim).astype(np.float32, copy=False)
            self._check_finite(ids, vectors)
            self.count += n
            yield ids, vectors

    def _check_finite(self, ids: list[str], vectors: np.ndarray) -> None:
        """A NaN or infinite vector would score NaN against every query and land at an arbitrary rank."""
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            raise InputError(
                self.name, f"vector {self.count + row + 1} (id {ids[row]!r}) holds a non-finite value (NaN or inf)"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_header(name: str, header: StreamHeader) -> None:
    """The header's types, before any of its values sizes a read or names a file (JSON says nothing of them)."""
    if not _is_int(header.dim) or header.dim < 1:
        raise InputError(name, f"corrupt stream header: dim {header.dim!r} is not a positive integer")
    if header.dim > MAX_DIM:  # it sizes every block's read: 10**12 would be a MemoryError, not a message
        raise InputError(name, f"corrupt stream header: dim {header.dim} is over simlm's maximum of {MAX_DIM}")
    if header.dtype not in _DTYPES:
        raise InputError(name, f"unsupported dtype {header.dtype!r} in the stream header")
    if not isinstance(header.encoder, dict):
        raise InputError(name, f"corrupt stream header: encoder {header.encoder!r} is not an object")
    if not (_is_int(header.shard_id) and _is_int(header.num_shards)):
        raise InputError(name, "corrupt stream header: shard_id and num_shards must be integers")
    if not isinstance(header.corpus, str):
        raise InputError(name, "corrupt stream header: corpus must be a string")
    for field, allowed in (("precision", PRECISIONS), ("backend", BACKENDS)):
        value = getattr(header, field)
        if value not in allowed:
            raise InputError(name, f"corrupt stream header: {field} {value!r} is not one of {', '.join(allowed[1:])}")


def streams_record(readers: list[EmbeddingReader], field: str) -> str:
    """What computed the vectors of all `readers` (`field`: "precision" or "backend"), for the index's meta.json:
    "" where no stream recorded it, the streams' values joined with "+" where they differ (shards encoded on
    different machines)."""
    return "+".join(sorted({getattr(reader.header, field) for reader in readers} - {""}))


def open_stream(path: str | Path) -> tuple[IO[bytes], str]:
    """Open a stream file, or stdin for `-`; returns the handle and the name for messages."""
    import sys

    if str(path) == "-":
        return sys.stdin.buffer, "<stdin>"
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such embedding file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an embedding file")
    return open(path, "rb"), str(path)  # a file, a FIFO or `<(simlm encode ...)`: read once, front to back
