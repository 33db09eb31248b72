"""`simlm search` past query encoding vs raw faiss, on the same flat index and the same query vectors.

simlm's side is what the search command does after encoding: faiss search in query blocks, row -> doc id
mapping, and writing the TREC run file. The baseline is `index.search` alone.

    python benchmarks/search_overhead.py [--docs 1000000] [--dim 384] [--queries 1000] [--k 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from simlm_cli.index.dense import BuildOptions, DenseIndex, build_dense_index
from simlm_cli.io.embeddings import EmbeddingReader, EmbeddingWriter, StreamHeader
from simlm_cli.io.runs import write_run
from simlm_cli.pipeline.search import QUERY_BLOCK


def unit(rows: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        header = StreamHeader(dim=args.dim, dtype="float32", encoder={"model": "synthetic", "pooling": "cls"})
        with open(tmp / "docs.emb", "wb") as handle:
            writer = EmbeddingWriter(handle, header)
            for start in range(0, args.docs, 100_000):
                n = min(100_000, args.docs - start)
                writer.write([f"doc{i}" for i in range(start, start + n)], unit(n, args.dim, rng))
            writer.close()
        with open(tmp / "docs.emb", "rb") as handle:
            build_dense_index([EmbeddingReader(handle, "docs.emb")], tmp / "idx", BuildOptions())
        index = DenseIndex(tmp / "idx")
        queries = unit(args.queries, args.dim, rng)
        qids = [f"q{i}" for i in range(args.queries)]

        started = time.perf_counter()
        index.index.search(queries, args.k)
        raw = time.perf_counter() - started

        def rankings():
            for start in range(0, len(qids), QUERY_BLOCK):
                scores, rows = index.search(queries[start : start + QUERY_BLOCK], args.k)
                yield from index.rankings(qids[start : start + QUERY_BLOCK], scores, rows)

        started = time.perf_counter()
        write_run(tmp / "run.trec", rankings())
        ours = time.perf_counter() - started

    print(f"flat index {args.docs:,} x {args.dim}-d, {args.queries:,} queries, top {args.k}")
    print(f"raw faiss index.search:             {raw:7.2f} s")
    print(f"simlm search (search + ids + run):  {ours:7.2f} s")
    print(f"ratio simlm / raw faiss: {ours / raw:.3f}x")


if __name__ == "__main__":
    main()
