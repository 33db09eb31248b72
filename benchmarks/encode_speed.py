"""simlm encode vs sentence-transformers `encode`: same model, same passages, same threads, one run.

python benchmarks/encode_speed.py [--passages 1000] [--model DIR_OR_NAME] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import torch

from simlm_cli.device import resolve_runtime
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.models.settings import resolve_model_path, resolve_settings
from simlm_cli.pipeline.encode import EncodeConfig, encode_corpus

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "simlm_cli" / "data" / "scifact" / "corpus.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--model", default=None)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()

    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "corpus.jsonl"
        import json

        with open(subset, "w") as handle:
            for p in itertools.islice(iter_corpus(args.corpus), args.passages):
                handle.write(json.dumps({"_id": p.id, "title": p.title, "text": p.text}) + "\n")

        settings = resolve_settings(args.model)
        runtime = resolve_runtime("cpu")
        config = EncodeConfig(corpus=str(subset), settings=settings, output=str(Path(tmp) / "out.emb"))
        summary = encode_corpus(config, runtime)
        simlm_rate = summary["passages_per_second"]

        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(resolve_model_path(args.model), device="cpu")
        texts = [p.joined() for p in iter_corpus(subset)]
        started = time.perf_counter()
        model.encode(texts)  # its defaults: batch 32, fp32, length-sorted
        st_rate = len(texts) / (time.perf_counter() - started)

    print(f"machine: {os.cpu_count()} cores, torch threads {threads}; simlm precision {runtime.precision.value}")
    print(f"simlm encode:                {simlm_rate:8.1f} passages/s")
    print(f"sentence-transformers encode: {st_rate:8.1f} passages/s")
    print(f"ratio simlm / sentence-transformers: {simlm_rate / st_rate:.2f}x")


if __name__ == "__main__":
    main()
