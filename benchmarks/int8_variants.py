"""simlm's `--precision int8` variants against its fp32 (the baseline) and bf16, same passages, same threads.

Each int8 variant (which ops are quantised, reduce_range, with or without the attention/LayerNorm fusions) is
built from the same model into a temporary directory (not the cache), then every encoder is warmed up and timed in
alternation (`--repeats` each, the best kept), at each `--batch-sizes`. Every int8 variant's vectors are compared
with fp32's (mean and min cosine), so a speed-up cannot hide a different result. Wall time is what is ranked; CPU
seconds are printed beside it because the machine may be shared.

python benchmarks/int8_variants.py [--passages 400] [--threads 2] [--batch-sizes 16,32] [--model DIR_OR_NAME]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simlm_cli.device import Precision, Runtime
from simlm_cli.environment import cpu_info
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.models.encoder import Encoder
from simlm_cli.models.int8 import ExportSettings, OrtModel, build_int8
from simlm_cli.models.loading import load_pretrained
from simlm_cli.models.settings import resolve_model_path, resolve_settings

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "simlm_cli" / "data" / "scifact" / "corpus.jsonl"
VARIANTS = {
    "matmul+attention": ExportSettings(head="encoder"),  # simlm's choice
    "matmul": ExportSettings(head="encoder", op_types=("MatMul",)),
    "matmul+attention reduce_range": ExportSettings(head="encoder", reduce_range=True),
    "matmul unfused": ExportSettings(head="encoder", op_types=("MatMul",), fuse=False),
}


def timed(encoder: Encoder, tokens: dict) -> tuple[float, float, np.ndarray]:
    """(wall seconds, CPU seconds, vectors) of one pass."""
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = encoder.encode_tokens(tokens)
    return time.perf_counter() - wall, time.process_time() - cpu, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="16,32")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default=None)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="Comma-separated names from: " + ", ".join(VARIANTS)
    )
    parser.add_argument("--no-bf16", action="store_true", help="Skip torch bf16.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    settings = resolve_settings(args.model)
    model_dir = resolve_model_path(settings.model)
    passages = list(itertools.islice(iter_corpus(args.corpus), args.passages))
    print(
        f"CPU: {cpu_info()['model']}; {args.threads} threads; {len(passages)} passages of {args.corpus}; model {model_dir}"
    )

    fp32 = Encoder(settings, Runtime("cpu", Precision.fp32))
    tokens = fp32.tokenize_passages(passages)
    encoders: dict[str, Encoder] = {"torch fp32": fp32}
    if not args.no_bf16:
        encoders["torch bf16"] = Encoder(settings, Runtime("cpu", Precision.bf16))
    eager = load_pretrained(model_dir, attn_implementation="eager").eval()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            directory = Path(tmp) / name.replace(" ", "_").replace("+", "_")
            directory.mkdir()
            info = build_int8(eager, VARIANTS[name], directory, model_dir)
            encoder = Encoder(settings, Runtime("cpu", Precision.fp32))
            encoder.model = OrtModel(directory / "model.onnx", info, eager.config)
            encoders[f"int8 {name}"] = encoder
        report(encoders, tokens, [int(b) for b in args.batch_sizes.split(",")], args.repeats, len(passages))


def report(encoders: dict[str, Encoder], tokens: dict, batch_sizes: list[int], repeats: int, count: int) -> None:
    reference = encoders["torch fp32"].encode_tokens(tokens)
    for batch in batch_sizes:
        best: dict[str, tuple[float, float]] = {}
        vectors: dict[str, np.ndarray] = {}
        for encoder in encoders.values():  # warm-up
            encoder.batch_size = batch
            encoder.encode_tokens({k: v[:32] for k, v in tokens.items()})
        for _ in range(repeats):  # in alternation: no encoder gets a quieter machine than the others
            for name, encoder in encoders.items():
                wall, cpu, vectors[name] = timed(encoder, tokens)
                best[name] = min(best.get(name, (wall, cpu)), (wall, cpu))
        base = count / best["torch fp32"][0]
        print(f"\nbatch {batch}: passages/s (wall, best of {repeats}), CPU s, ratio to torch fp32, cosine to fp32")
        for name, (wall, cpu) in best.items():
            cosine = np.sum(vectors[name] * reference, axis=1) / (
                np.linalg.norm(vectors[name], axis=1) * np.linalg.norm(reference, axis=1)
            )
            rate = count / wall
            print(
                f"  {name:28s} {rate:7.1f} p/s  cpu {cpu:6.2f} s  x{rate / base:4.2f}  "
                f"cosine mean {cosine.mean():.4f} min {cosine.min():.4f}"
            )


if __name__ == "__main__":
    main()
