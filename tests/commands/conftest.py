"""The end-to-end runs the command tests share, prepared once per session.

Every CLI process pays ~5 s importing torch, so the fixture starts independent commands side by side (in waves:
encode, then index, then search) and the tests only look at the results.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from simlm_cli.io.embeddings import EmbeddingReader, EmbeddingWriter, StreamHeader

RANDOM_VECTORS = 1000  # enough to train IVF lists and 256-centroid PQ codebooks


def _read_stream(path: Path) -> tuple[StreamHeader, list[str], np.ndarray]:
    with open(path, "rb") as handle:
        reader = EmbeddingReader(handle, str(path))
        blocks = list(reader)
    ids = [docid for block_ids, _ in blocks for docid in block_ids]
    vectors = np.concatenate([vectors for _, vectors in blocks]) if blocks else np.zeros((0, reader.header.dim))
    return reader.header, ids, vectors


def write_random_stream(path: Path, encoder: dict, count: int = RANDOM_VECTORS, dim: int = 32) -> list[str]:
    """A stream of unit vectors in a few clusters, as `simlm encode` would write with `encoder`."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((8, dim))
    vectors = centres[rng.integers(0, 8, count)] + 0.3 * rng.standard_normal((count, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"r{i:04d}" for i in range(count)]
    buffer = io.BytesIO()
    writer = EmbeddingWriter(buffer, StreamHeader(dim=dim, dtype="float32", encoder=encoder))
    for start in range(0, count, 300):  # several blocks
        writer.write(ids[start : start + 300], vectors[start : start + 300])
    writer.close()
    path.write_bytes(buffer.getvalue())
    return ids


@pytest.fixture(scope="session")
def dense(tmp_path_factory, tiny_bert_dir, tiny_st_legacy_dir, tiny_data, cli_jobs) -> SimpleNamespace:
    """Streams, indexes and runs made by the CLI from the tiny corpus; `.done[name]` holds each command's result."""
    work = tmp_path_factory.mktemp("dense")
    data = tiny_data
    # fp32 on the CPU everywhere: `auto` picks bf16 on CPUs with AMX/AVX512-BF16 (or a GPU), where sharded and
    # unsharded encodes (different batches) would differ by more than the tolerances below.
    runtime = ["--device", "cpu", "--precision", "fp32"]
    encode = ["encode", "--model", tiny_bert_dir, "--corpus", data.corpus, *runtime]
    jobs: dict[str, object] = {}

    # Wave 1: everything that encodes the corpus.
    jobs["pipe"] = cli_jobs.pipe(encode, ["index", "--output", work / "idx-pipe"])
    jobs["encode-file"] = cli_jobs.run([*encode, "--output", work / "tiny.emb"])
    for shard in (0, 1):
        jobs[f"encode-shard{shard}"] = cli_jobs.run(
            [*encode, "--num-shards", "2", "--shard-id", str(shard), "--output", f"{work / 'shards'}/"]
        )
    jobs["encode-st"] = cli_jobs.run(
        ["encode", "--model", tiny_st_legacy_dir, "--corpus", data.corpus, *runtime, "--output", work / "st.emb"]
    )

    done: dict[str, subprocess.CompletedProcess] = {}
    done["encode"], done["index-pipe"] = jobs["pipe"].result()
    for name in ("encode-file", "encode-shard0", "encode-shard1", "encode-st"):
        done[name] = jobs[name].result()

    # Wave 2: indexes.
    waves2 = {}
    if done["encode-file"].returncode == 0:
        encoder = _read_stream(work / "tiny.emb")[0].encoder
        write_random_stream(work / "random.emb", encoder)
        waves2["index-file"] = ["index", work / "tiny.emb", "--output", work / "idx-file"]
        waves2["index-hnsw"] = ["index", work / "tiny.emb", "--type", "hnsw", "--output", work / "idx-hnsw"]
        waves2["index-ivfpq"] = ["index", work / "random.emb", "--type", "ivfpq", "--output", work / "idx-ivfpq"]
    waves2["index-shard"] = ["index", work / "shards", "--output", work / "idx-shard"]
    started = {name: cli_jobs.run(args) for name, args in waves2.items()}
    done.update({name: future.result() for name, future in started.items()})

    # Wave 3: searches (with --qrels: only judged queries, each checked against the queries file).
    judged = ["--queries", data.queries, "--qrels", data.qrels, *runtime]
    searches = {
        "search-pipe": ["--index", work / "idx-pipe", *judged],  # the run goes to stdout
        "search-file": ["--index", work / "idx-file", *judged, "--output", work / "run-file.trec"],
        "search-shard": ["--index", work / "idx-shard", *judged, "--output", work / "run-shard.trec"],
        "search-hnsw": ["--index", work / "idx-hnsw", *judged, "--output", work / "run-hnsw.trec"],
        "search-tsv": ["--index", work / "idx-file", *judged, "--output", work / "run-file.tsv"],
        "search-msmarco-stdout": ["--index", work / "idx-file", *judged, "--format", "msmarco", "--k", "5"],
        "search-ivfpq": ["--index", work / "idx-ivfpq", "--queries", data.queries, *runtime, "--k", "10",
                         "--output", work / "run-ivfpq.trec"],
    }  # fmt: skip
    started = {name: cli_jobs.run(["search", *args]) for name, args in searches.items()}
    done.update({name: future.result() for name, future in started.items()})
    return SimpleNamespace(work=work, data=data, done=done)


@pytest.fixture(scope="session")
def tiny_stream(dense) -> Path:
    """The tiny corpus encoded by `simlm encode --output`, as bytes on disk."""
    return dense.work / "tiny.emb"


@pytest.fixture(scope="session")
def tiny_index(dense) -> Path:
    """A flat index of the tiny corpus built by `simlm index`."""
    return dense.work / "idx-file"


@pytest.fixture(name="read_stream", scope="session")
def read_stream_fixture():
    """A function: stream file -> (header, ids, vectors as one float32 array)."""
    return _read_stream
