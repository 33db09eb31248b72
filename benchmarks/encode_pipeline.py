"""The encode pipeline on the CPU: chunks tokenized on a background thread ahead of the model (what `simlm encode`
does, prefetch 1) against everything on one thread (prefetch 0, the former loop), and batches by count (16, the
CPU default) against a token budget. Same model, passages, chunks and threads; the vectors of every row are
checked equal to the first's.

Rows are warmed up, then timed in alternation (`--repeats` rounds, best kept), so that on a shared machine none
gets a quieter moment than the others; ratios (wall clock, and per CPU second of the process) are to `prefetch 0, batch 16`.

python benchmarks/encode_pipeline.py [--passages 200] [--chunk-size 64] [--repeats 5] [--threads 2] [--model DIR]
                                     [--device cpu] [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from simlm_cli.device import Precision, resolve_runtime
from simlm_cli.environment import cpu_info
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.settings import resolve_settings

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "simlm_cli" / "data" / "scifact" / "corpus.jsonl"
# (name, prefetch, batch size, token budget)
ROWS = (
    ("prefetch 0, batch 16", 0, 16, None),
    ("prefetch 1, batch 16", 1, 16, None),
    ("prefetch 1, 4096 tokens", 1, None, 4096),
)


def encode(encoder: BiEncoder, passages: list, chunk_size: int, prefetch: int) -> tuple[float, float, np.ndarray]:
    """(wall seconds, CPU seconds of this process, vectors): CPU seconds are less disturbed by a shared machine."""
    chunks = [passages[i : i + chunk_size] for i in range(0, len(passages), chunk_size)]
    started, cpu = time.perf_counter(), time.process_time()
    vectors = np.concatenate([v for _, v in encoder.encode_stream(iter(chunks), prefetch=prefetch)])
    return time.perf_counter() - started, time.process_time() - cpu, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=64, help="Passages per chunk (simlm encode: 2048).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="Default: the embedded all-MiniLM-L6-v2.")
    parser.add_argument("--corpus", default=str(CORPUS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['cores']} cores); torch threads {args.threads}; torch {torch.__version__}")
    passages = list(itertools.islice(iter_corpus(args.corpus), args.passages))
    settings, runtime = resolve_settings(args.model), resolve_runtime(args.device, Precision.fp32)
    rows = []
    for name, prefetch, batch_size, tokens in ROWS:
        encoder = BiEncoder.load(settings, runtime, batch_size=batch_size, max_batch_tokens=tokens)
        encode(encoder, passages[:32], args.chunk_size, prefetch)  # warm-up
        rows.append({"row": name, "encoder": encoder, "prefetch": prefetch, "seconds": [], "cpu_seconds": []})
    reference = None
    for _ in range(args.repeats):
        for row in rows:
            seconds, cpu_seconds, vectors = encode(row["encoder"], passages, args.chunk_size, row["prefetch"])
            row["seconds"].append(seconds)
            row["cpu_seconds"].append(cpu_seconds)
            reference = vectors if reference is None else reference
            row["max_abs_diff"] = float(np.abs(vectors - reference).max())
    base, base_cpu = min(rows[0]["seconds"]), min(rows[0]["cpu_seconds"])
    print(f"{len(passages)} passages, chunks of {args.chunk_size}, best of {args.repeats} (interleaved), fp32")
    print("| row | passages/s (best) | ratio | passages per CPU s (best) | ratio | max abs diff to first row |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        best, best_cpu = min(row["seconds"]), min(row["cpu_seconds"])
        row.update(passages_per_s=len(passages) / best, ratio=base / best, passages_per_cpu_s=len(passages) / best_cpu,
                   cpu_ratio=base_cpu / best_cpu)  # fmt: skip
        print(
            f"| {row['row']} | {row['passages_per_s']:.1f} | {row['ratio']:.3f} | {row['passages_per_cpu_s']:.1f} | "
            f"{row['cpu_ratio']:.3f} | {row['max_abs_diff']:.1e} |"
        )
    if args.json:
        out = [{k: v for k, v in row.items() if k != "encoder"} for row in rows]
        Path(args.json).write_text(json.dumps({"cpu": cpu["model"], "rows": out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
