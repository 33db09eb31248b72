"""simlm encode vs sentence-transformers `encode`: same model, same passages, same threads, one run.

Both are warmed up first, then timed in alternation (`--repeats` each; the best rate of each is kept), so neither
gets a colder start or a busier machine. simlm uses its `auto` precision (bf16 on CPUs with AMX/AVX512-BF16, fp32
elsewhere) unless `--precision` says otherwise; sentence-transformers runs as its defaults do (fp32, batch 32,
length-sorted). The vectors of both are compared too (mean cosine), so a speed-up cannot hide a different result.

python benchmarks/encode_speed.py [--passages 1000] [--model DIR_OR_NAME] [--corpus PATH] [--precision auto]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simlm_cli.device import resolve_runtime
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.io.embeddings import EmbeddingReader
from simlm_cli.models.settings import resolve_model_path, resolve_settings
from simlm_cli.pipeline.encode import EncodeConfig, encode_corpus

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "simlm_cli" / "data" / "scifact" / "corpus.jsonl"
WARMUP_PASSAGES = 32


def write_subset(source: str, path: Path, count: int, skip: int = 0) -> None:
    with open(path, "w") as handle:
        for p in itertools.islice(iter_corpus(source), skip, skip + count):
            handle.write(json.dumps({"_id": p.id, "title": p.title, "text": p.text}) + "\n")


def simlm_rate(subset: Path, settings, runtime, out: Path) -> float:
    summary = encode_corpus(EncodeConfig(corpus=str(subset), settings=settings, output=str(out)), runtime)
    return summary["count"] / summary["seconds"]


def st_rate(model, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = model.encode(texts)  # its defaults: batch 32, fp32, length-sorted
    return len(texts) / (time.perf_counter() - started), vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--model", default=None)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--precision", default="auto", help="simlm's --precision (auto, fp32, bf16).")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    threads = torch.get_num_threads()
    settings = resolve_settings(args.model)
    runtime = resolve_runtime("cpu", args.precision)
    model = SentenceTransformer(resolve_model_path(args.model), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm, subset = tmp / "warm.jsonl", tmp / "corpus.jsonl"
        write_subset(args.corpus, warm, WARMUP_PASSAGES)
        write_subset(args.corpus, subset, args.passages, skip=WARMUP_PASSAGES)
        texts = [p.joined() for p in iter_corpus(subset)]
        simlm_rate(warm, settings, runtime, tmp / "warm.emb")
        st_rate(model, [p.joined() for p in iter_corpus(warm)])
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(simlm_rate(subset, settings, runtime, tmp / "out.emb"))
            rate, st_vectors = st_rate(model, texts)
            theirs.append(rate)
        with open(tmp / "out.emb", "rb") as handle:
            simlm_vectors = np.concatenate([v for _, v in EmbeddingReader(handle, "out.emb")])
    cosine = np.sum(simlm_vectors * st_vectors, axis=1) / (
        np.linalg.norm(simlm_vectors, axis=1) * np.linalg.norm(st_vectors, axis=1)
    )
    print(f"machine: {os.cpu_count()} cores, torch threads {threads}; {len(texts)} passages of {args.corpus}")
    print(f"simlm encode ({runtime.precision.value}):          {max(ours):8.1f} passages/s  (runs: {ours})")
    print(f"sentence-transformers encode (fp32): {max(theirs):8.1f} passages/s  (runs: {theirs})")
    print(f"vectors: mean cosine simlm vs sentence-transformers {cosine.mean():.6f} (min {cosine.min():.6f})")
    print(f"ratio simlm / sentence-transformers: {max(ours) / max(theirs):.2f}x")


if __name__ == "__main__":
    main()
