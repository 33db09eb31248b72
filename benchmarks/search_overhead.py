"""`simlm search` past query encoding vs raw faiss, on the same flat index and the same query vectors.

simlm's side is what the search command does once the queries are encoded: open the index directory (faiss index,
document ids, consistency checks), search in blocks on a worker thread while the TREC run is written, map rows to
document ids, write the run file atomically. The baseline is raw faiss: `faiss.read_index` and one
`index.search` over all the queries, writing nothing. Both run in this process, on the same files and threads.

    python benchmarks/search_overhead.py [--docs 200000] [--dim 384] [--queries 1000] [--k 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from simlm_cli.index.dense import INDEX_FILE, DenseIndex, build_dense_index
from simlm_cli.io.embeddings import EmbeddingReader, EmbeddingWriter, StreamHeader
from simlm_cli.io.runs import write_run
from simlm_cli.options.index import BuildOptions
from simlm_cli.pipeline.search import search_overlapped


def unit(rows: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(tmp: Path, docs: int, dim: int, rng: np.random.Generator) -> Path:
    header = StreamHeader(dim=dim, dtype="float32", encoder={"model": "synthetic", "pooling": "cls"})
    with open(tmp / "docs.emb", "wb") as handle:
        writer = EmbeddingWriter(handle, header)
        for start in range(0, docs, 100_000):
            n = min(100_000, docs - start)
            writer.write([f"doc{i}" for i in range(start, start + n)], unit(n, dim, rng))
        writer.close()
    with open(tmp / "docs.emb", "rb") as handle:
        build_dense_index([EmbeddingReader(handle, "docs.emb")], tmp / "idx", BuildOptions())
    (tmp / "docs.emb").unlink()
    return tmp / "idx"


def time_raw(index_dir: Path, queries: np.ndarray, k: int) -> tuple[float, float]:
    import faiss

    started = time.perf_counter()
    index = faiss.read_index(str(index_dir / INDEX_FILE))
    loaded = time.perf_counter()
    index.search(queries, k)
    return loaded - started, time.perf_counter() - loaded


def time_simlm(index_dir: Path, queries: np.ndarray, qids: list[str], k: int, out: Path) -> tuple[float, float]:
    started = time.perf_counter()
    index = DenseIndex(index_dir)
    loaded = time.perf_counter()
    write_run(out, search_overlapped(index, qids, queries, k))
    return loaded - started, time.perf_counter() - loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="Alternating runs of each; the best is kept.")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index_dir = build(tmp, args.docs, args.dim, rng)
        queries = unit(args.queries, args.dim, rng)
        qids = [f"q{i}" for i in range(args.queries)]
        raw, ours = [], []
        for _ in range(args.repeats):  # alternated, so neither side gets a warmer cache or a quieter machine
            raw.append(time_raw(index_dir, queries, args.k))
            ours.append(time_simlm(index_dir, queries, qids, args.k, tmp / "run.trec"))
        lines = (tmp / "run.trec").read_bytes().count(b"\n")
    raw_load, raw_search = min(raw, key=sum)
    our_load, our_search = min(ours, key=sum)
    print(f"flat index {args.docs:,} x {args.dim}-d, {args.queries:,} queries, top {args.k} ({lines:,} run lines)")
    print(f"raw faiss:  read_index {raw_load:6.2f} s + search {raw_search:6.2f} s = {raw_load + raw_search:6.2f} s")
    print(
        f"simlm:      open index {our_load:6.2f} s + search and write run {our_search:6.2f} s = {our_load + our_search:6.2f} s"
    )
    print(f"ratio simlm / raw faiss: {(our_load + our_search) / (raw_load + raw_search):.3f}x "
          f"(search and write alone: {our_search / raw_search:.3f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
