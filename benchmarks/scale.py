"""Dense indexes at growing corpus sizes, built and searched through simlm's own index layer, and extrapolated to
MS MARCO (8.8M passages x 768-d).

What is measured is what `simlm index` / `simlm search` run: each size is written as an embedding stream in simlm's
format, built by `build_dense_index` (flat, HNSW, IVF-PQ with simlm's default parameters) and searched through
`DenseIndex`. Each build and each search runs in a child process of its own, so its peak RSS
(`getrusage(RUSAGE_SELF).ru_maxrss`) is that step's alone. The CPU is shared with other work, so the headline time
is CPU seconds (`time.process_time()`, all threads of the child); wall seconds are a second column. Recall@100 is
each index's top 100 against the flat (exact) index's top 100 for the same queries.

Synthetic corpora from real embeddings. Random Gaussian vectors misstate ANN recall: in high dimension they are
all nearly orthogonal, with no neighbourhoods for HNSW or IVF lists to exploit, while real embeddings lie in a few
dense, anisotropic regions. So the base vectors are the SciFact corpus (5,183 passages) encoded with the default
model (all-MiniLM-L6-v2, 384-d), cached under --cache-dir, and vector i of a corpus of N is
    normalise(a + lam * b + sigma * e)
with a, b two real passage vectors drawn at random, lam ~ U(0, 0.5) (a mixture that stays near a's topic but
between real topics), and e drawn from the real vectors' own covariance (e = z * S / sqrt(n) @ Vt from the SVD of
the centred base matrix, z ~ N(0, I)), sigma = 0.5: a perturbation along the directions in which real passages
actually differ, not isotropic noise, so that no two vectors coincide while the neighbourhood structure stays that
of real text. The queries are the SciFact test queries encoded by the same model: real queries, never used to
generate the corpus. Sizes share one generator (seed 0), so a smaller corpus is a prefix of a larger one.

The extrapolation to 8.8M x 768-d scales the largest measured size of each type under stated cost models (printed
with the table); recall cannot be extrapolated and is not.

    python benchmarks/scale.py                       # 100k, 250k, 500k (HNSW to 250k), ~20 min on 2 cores
    python benchmarks/scale.py --quick               # tiny sizes, seconds: a smoke test
    python benchmarks/scale.py --sizes 100k,200k --hnsw-max 100k --json docs/scale-results.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO / "simlm_cli" / "data" / "scifact"
TYPES = ("flat", "hnsw", "ivfpq")
K = 100
GEN_BLOCK = 65_536
LAMBDA_MAX = 0.5
SIGMA = 0.5
MSMARCO_N = 8_841_823
MSMARCO_DIM = 768


# -- base vectors ------------------------------------------------------------------------------------------------
def real_vectors(cache_dir: Path, passages: int, queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(corpus vectors, test query vectors, model) of SciFact, encoded once with the default model and cached."""
    cache = cache_dir / f"scifact-minilm-{passages or 'all'}-{queries or 'all'}.npz"
    if cache.is_file():
        data = np.load(cache)
        return data["corpus"], data["queries"], str(data["model"])
    from simlm_cli.device import resolve_runtime
    from simlm_cli.io.corpus import iter_corpus
    from simlm_cli.io.qrels import read_qrels
    from simlm_cli.io.queries import read_queries
    from simlm_cli.models.biencoder import BiEncoder
    from simlm_cli.models.settings import resolve_settings

    corpus = list(iter_corpus(SCIFACT / "corpus.jsonl"))[: passages or None]
    judged = read_qrels(SCIFACT / "qrels" / "test.tsv").judgments
    texts = [text for qid, text in read_queries(SCIFACT / "queries.jsonl").items() if qid in judged]
    texts = texts[: queries or None]
    settings = resolve_settings(None)
    encoder = BiEncoder.load(settings, resolve_runtime("cpu", "fp32"))
    started = time.perf_counter()
    corpus_vectors = encoder.encode_passages(corpus).astype(np.float32)
    query_vectors = encoder.encode_queries(texts).astype(np.float32)
    print(f"encoded {len(corpus)} passages + {len(texts)} queries in {time.perf_counter() - started:.0f} s -> {cache}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez(partial, corpus=corpus_vectors, queries=query_vectors, model=settings.model)
    partial.replace(cache)
    return corpus_vectors, query_vectors, settings.model


def synthetic_blocks(base: np.ndarray, count: int, seed: int = 0):
    """`count` vectors made from `base` as the module docstring says, GEN_BLOCK at a time (same prefix for any count)."""
    rng = np.random.default_rng(seed)
    centred = base - base.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    root = (s[:, None] / math.sqrt(len(base))) * vt  # z @ root ~ N(0, covariance of base)
    for start in range(0, count, GEN_BLOCK):
        n = min(GEN_BLOCK, count - start)
        a = base[rng.integers(0, len(base), n)]
        b = base[rng.integers(0, len(base), n)]
        lam = rng.uniform(0.0, LAMBDA_MAX, (n, 1))
        noise = rng.standard_normal((n, len(s))) @ root
        vectors = a + lam * b + SIGMA * noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        yield [f"d{i}" for i in range(start, start + n)], vectors.astype(np.float32)


def write_stream(path: Path, base: np.ndarray, count: int, model: str) -> None:
    """An embedding stream of `count` synthetic vectors, as `simlm encode` writes one."""
    from simlm_cli.io.embeddings import EmbeddingWriter, StreamHeader
    from simlm_cli.models.settings import resolve_settings

    header = StreamHeader(dim=base.shape[1], dtype="float32", encoder=resolve_settings(model).to_json(),
                          corpus=f"synthetic-{count}")  # fmt: skip
    with open(path, "wb") as handle:
        writer = EmbeddingWriter(handle, header)
        for ids, vectors in synthetic_blocks(base, count):
            writer.write(ids, vectors)
        writer.close()


# -- children: one build or one search per process --------------------------------------------------------------
def _peak_mb() -> float:
    """This process's peak RSS. Linux's VmHWM belongs to the process's own memory map, which exec replaces;
    getrusage's ru_maxrss would carry over the parent's peak (torch and the encoder, ~1.2 GB) into the child."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: an upper bound


def _usage() -> dict[str, float]:
    return {"cpu": time.process_time(), "wall": time.perf_counter(), "peak_mb": _peak_mb()}


def child_build(args: dict[str, Any]) -> dict[str, Any]:
    from simlm_cli.index.dense import IndexType, build_dense_index, faiss_module
    from simlm_cli.io.embeddings import EmbeddingReader
    from simlm_cli.options.index import BuildOptions

    faiss_module().omp_set_num_threads(args["threads"])
    before = _usage()
    with open(args["stream"], "rb") as handle:
        options = BuildOptions(index_type=IndexType(args["type"]))
        build_dense_index([EmbeddingReader(handle, args["stream"])], args["output"], options)
    after = _usage()
    size = sum(p.stat().st_size for p in Path(args["output"]).iterdir())  # index.faiss, docids.txt, meta.json
    return {"cpu_s": after["cpu"] - before["cpu"], "wall_s": after["wall"] - before["wall"],
            "peak_mb": after["peak_mb"], "disk_mb": size / 2**20,
            "index_mb": (Path(args["output"]) / "index.faiss").stat().st_size / 2**20}  # fmt: skip


def child_search(args: dict[str, Any]) -> dict[str, Any]:
    from simlm_cli.index.dense import DenseIndex, faiss_module

    faiss_module().omp_set_num_threads(args["threads"])
    queries = np.load(args["queries"])
    index = DenseIndex(args["index"])
    before = _usage()
    _, rows = index.search(queries, K)
    after = _usage()
    docids = index.docids[np.maximum(rows, 0)]
    ids = np.where(rows >= 0, [[int(d[1:]) for d in row] for row in docids], -1)
    np.save(args["result"], ids)
    n = len(queries)
    return {"search_cpu_ms": 1000 * (after["cpu"] - before["cpu"]) / n,
            "search_wall_ms": 1000 * (after["wall"] - before["wall"]) / n, "search_peak_mb": after["peak_mb"]}  # fmt: skip


def run_child(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(args)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the measurement ---------------------------------------------------------------------------------------------
def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(e)) / len(e) for f, e in zip(found, exact)]))


def measure_size(work: Path, base: np.ndarray, query_file: Path, count: int, types: list[str], opts) -> list[dict]:
    stream = work / f"synthetic-{count}.emb"
    write_stream(stream, base, count, opts.model)
    rows, exact = [], None
    for kind in types:  # flat first: the others' recall is against it
        index_dir = work / f"{kind}-{count}"
        built = run_child("build", {"type": kind, "stream": str(stream), "output": str(index_dir),
                                    "threads": opts.threads})  # fmt: skip
        result = work / f"{kind}-{count}.npy"
        searched = run_child("search", {"index": str(index_dir), "queries": str(query_file), "result": str(result),
                                        "threads": opts.threads})  # fmt: skip
        found = np.load(result)
        exact = found if kind == "flat" else exact
        meta = json.loads((index_dir / "meta.json").read_text())
        row = {"type": kind, "n": count, "dim": base.shape[1], **built, **searched,
               "recall@100_vs_flat": recall(found, exact), "search_params": meta["search_params"]}  # fmt: skip
        rows.append(row)
        print_row(row, flush=True)
        shutil.rmtree(index_dir)
    stream.unlink()
    return rows


HEADER = (f"{'type':<6} {'N':>9} {'build CPU s':>11} {'build wall s':>12} {'q CPU ms':>9} {'q wall ms':>9} "
          f"{'build peak MB':>13} {'search peak MB':>14} {'disk MB':>9} {'R@100/flat':>10}")  # fmt: skip


def print_row(row: dict, flush: bool = False) -> None:
    print(f"{row['type']:<6} {row['n']:>9,} {row['cpu_s']:>11.1f} {row['wall_s']:>12.1f} {row['search_cpu_ms']:>9.2f} "
          f"{row['search_wall_ms']:>9.2f} {row['peak_mb']:>13,.0f} {row['search_peak_mb']:>14,.0f} "
          f"{row['disk_mb']:>9,.1f} {row['recall@100_vs_flat']:>10.4f}", flush=flush)  # fmt: skip


# -- extrapolation ---------------------------------------------------------------------------------------------
def extrapolate(rows: list[dict], n: int = MSMARCO_N, dim: int = MSMARCO_DIM) -> list[dict]:
    """Each type's largest measured size scaled to n x dim under the cost models in ASSUMPTIONS."""
    out = []
    for kind in TYPES:
        measured = [r for r in rows if r["type"] == kind]
        if not measured:
            continue
        r = max(measured, key=lambda row: row["n"])
        m0, d0 = r["n"], r["dim"]
        size = (n * dim) / (m0 * d0)
        if kind == "flat":
            build, query, memory = size, size, n * dim * 4
        elif kind == "hnsw":
            hnsw_m = 32
            build = (n * math.log(n) * dim) / (m0 * math.log(m0) * d0)
            query = (math.log(n) * dim) / (math.log(m0) * d0)
            memory = n * (dim * 4 + hnsw_m * 2 * 4)
        else:
            pq_m = _pq_m(dim)
            build = (n**1.5 * dim) / (m0**1.5 * d0)
            query = (math.sqrt(n) * dim) / (math.sqrt(m0) * d0)
            nlist = int(4 * math.sqrt(n))
            memory = n * (pq_m + 8) + nlist * dim * 4
        out.append({"type": kind, "n": n, "dim": dim, "from_n": m0, "build_cpu_s": r["cpu_s"] * build,
                    "search_cpu_ms": r["search_cpu_ms"] * query, "index_gb": memory / 1e9})  # fmt: skip
    return out


def _pq_m(dim: int) -> int:
    from simlm_cli.index.dense import _pq_m as simlm_pq_m

    return simlm_pq_m(dim, 0)


ASSUMPTIONS = """\
Cost models, from each type's largest measured size (same CPU, same threads):
  flat   build (read + copy) and search (one pass over all vectors) linear in N*d; memory N*d*4 bytes.
  hnsw   build ~ N log N * d, search ~ log N * d (efSearch fixed); memory N*(d*4 + M*2*4), M=32.
  ivfpq  nlist ~ 4 sqrt(N): assigning N vectors to nlist centroids ~ N^1.5 * d dominates build; a query scans
         nprobe lists of ~N/nlist codes plus the nlist centroids ~ sqrt(N) * d; memory N*(m + 8) bytes (PQ codes +
         64-bit ids) + nlist*d*4 centroids, m = simlm's default pq_m for d (96 at 768-d).
  Recall is not extrapolated: at fixed efSearch/nprobe it usually falls as N grows."""


def print_extrapolation(rows: list[dict]) -> None:
    print(f"\nExtrapolated to MS MARCO: {MSMARCO_N:,} passages x {MSMARCO_DIM}-d")
    print(f"{'type':<6} {'from N':>9} {'build CPU h':>11} {'q CPU ms':>9} {'index GB':>9}")
    for r in rows:
        print(f"{r['type']:<6} {r['from_n']:>9,} {r['build_cpu_s'] / 3600:>11.2f} {r['search_cpu_ms']:>9.1f} "
              f"{r['index_gb']:>9.1f}")  # fmt: skip
    print(ASSUMPTIONS)


# -- the machine ---------------------------------------------------------------------------------------------
def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or "unknown", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                wanted = ("avx", "fma", "amx", "sse4_2", "f16c")
                flags = sorted(f for f in line.split(":", 1)[1].split() if f.startswith(wanted))
                break
    except OSError:
        pass
    import faiss

    return {"cpu": model, "cores": os.cpu_count(), "flags": flags, "faiss": faiss.__version__,
            "faiss_compile": faiss.get_compile_options()}  # fmt: skip


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100k,250k,500k", help="corpus sizes, e.g. 250k,500k,1M")
    parser.add_argument("--hnsw-max", default="250k", help="largest size built as HNSW (its build is the slowest)")
    parser.add_argument("--ivfpq-max", default="500k", help="largest size built as IVF-PQ")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="faiss threads")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "out" / "scale-cache",
                        help="real SciFact vectors are cached here")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sizes from 100 passages and 10 queries (seconds)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        kind, args = opts.child
        print(json.dumps((child_build if kind == "build" else child_search)(json.loads(args))))
        return
    if opts.quick:
        opts.sizes, opts.hnsw_max, opts.ivfpq_max = "1k,2k", "2k", "2k"
    sizes = sorted(parse_size(s) for s in opts.sizes.split(","))
    hnsw_max, ivfpq_max = parse_size(opts.hnsw_max), parse_size(opts.ivfpq_max)
    machine = cpu_info()
    print(f"CPU: {machine['cpu']} ({machine['cores']} cores), flags: {' '.join(machine['flags'])}")
    print(f"faiss {machine['faiss']} ({machine['faiss_compile']}), {opts.threads} threads")
    base, queries, opts.model = real_vectors(opts.cache_dir, 100 if opts.quick else 0, 10 if opts.quick else 0)
    print(f"base: {len(base):,} real SciFact vectors x {base.shape[1]}-d ({opts.model}); {len(queries)} real queries")
    rows: list[dict] = []
    opts.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scale-", dir=opts.cache_dir) as tmp:
        work = Path(tmp)
        query_file = work / "queries.npy"
        np.save(query_file, queries)
        print(HEADER, flush=True)
        for count in sizes:
            types = ["flat"] + (["hnsw"] if count <= hnsw_max else []) + (["ivfpq"] if count <= ivfpq_max else [])
            rows.extend(measure_size(work, base, query_file, count, types, opts))
    extrapolated = extrapolate(rows)
    print_extrapolation(extrapolated)
    if opts.json:
        report = {"machine": machine, "threads": opts.threads, "k": K, "queries": len(queries),
                  "base_vectors": len(base), "model": opts.model, "generator": {"lambda_max": LAMBDA_MAX,
                  "sigma": SIGMA}, "rows": rows, "extrapolated": extrapolated, "assumptions": ASSUMPTIONS}  # fmt: skip
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
