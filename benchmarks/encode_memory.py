"""Peak memory of `simlm encode` on 200k synthetic passages vs 20k: streaming means the ratio stays near 1.

A tiny BERT is built here (memory is about the corpus stream, not the model; a real model would only take
longer). Each size runs in its own process; peak RSS comes from getrusage of that child.

    python benchmarks/encode_memory.py [--small 20000] [--large 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = [f"w{i}" for i in range(500)]


def build_tiny_model(path: Path) -> None:
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    path.mkdir(parents=True, exist_ok=True)
    # The vocabulary as a dict: transformers 5's BertTokenizer ignores vocab_file= (every word would be [UNK]).
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=160)  # fmt: skip
    BertModel(config).save_pretrained(path)


def write_corpus(path: Path, count: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as handle:
        for i in range(count):
            text = " ".join(rng.choices(WORDS, k=rng.randint(40, 200)))
            handle.write(json.dumps({"_id": f"d{i}", "title": f"w{i % 500}", "text": text}) + "\n")


def peak_rss_mib(model: Path, corpus: Path, out: Path) -> float:
    code = (
        "import resource, sys; from simlm_cli.cli import main; sys.argv = sys.argv[1:]\n"
        "try:\n    main()\nfinally:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "simlm", "encode", "--model", str(model), "--corpus", str(corpus),
         "--output", str(out), "--device", "cpu", "--batch-size", "64"],
        capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_tiny_model(tmp / "model")
        results = {}
        for count in (args.small, args.large):
            corpus = tmp / f"corpus-{count}.jsonl"
            write_corpus(corpus, count)
            results[count] = peak_rss_mib(tmp / "model", corpus, tmp / f"out-{count}.emb")
            print(
                f"{count:>8,} passages ({corpus.stat().st_size / 2**20:6.1f} MiB corpus): peak RSS {results[count]:7.1f} MiB"
            )
    print(f"ratio {args.large:,} / {args.small:,}: {results[args.large] / results[args.small]:.3f}x")


if __name__ == "__main__":
    main()
