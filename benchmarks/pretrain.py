"""Training throughput of every `simlm pretrain` objective, and rlm next to a plain Hugging Face MLM loop.

Same model, same passages, same batch and length, same threads, one run. Tokens/s counts non-padding input
tokens per second of forward + backward + AdamW step (after warm-up steps).

python benchmarks/pretrain.py [--model DIR_OR_NAME] [--batch-size 8] [--max-length 144] [--steps 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import torch

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "simlm_cli" / "data" / "scifact" / "corpus.jsonl"


def _batches(tokenizer, corpus: str, batch_size: int, max_length: int, count: int) -> list[dict]:
    from simlm_cli.io.corpus import iter_corpus
    from simlm_cli.training.pretraining.data import tokenize

    texts = [p.joined() for p in itertools.islice(iter_corpus(corpus), batch_size * count)]
    return [dict(tokenize(tokenizer, texts[i : i + batch_size], max_length)) for i in range(0, len(texts), batch_size)]


def _time(step, batches: list[dict], warmup: int) -> float:
    for batch in batches[:warmup]:
        step(batch)
    tokens, began = 0, time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - began)


def bench_objective(name: str, model_path: str, tokenizer, batches: list[dict], warmup: int) -> float:
    from simlm_cli.training.pretraining.registry import load_objective, resolve_options
    from simlm_cli.training.trainer import build_optimizer

    cls = load_objective(name)
    torch.manual_seed(0)
    objective = cls(model_path, tokenizer, resolve_options(cls, []), lambda _m: None).train()
    optimizer = build_optimizer(objective, 1e-4, 0.01)
    rng = torch.Generator().manual_seed(0)

    def step(batch: dict) -> None:
        objective(batch, rng).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return _time(step, batches, warmup)


def bench_hf_mlm(model_path: str, tokenizer, batches: list[dict], warmup: int) -> float:
    """The textbook loop: AutoModelForMaskedLM + DataCollatorForLanguageModeling's masking at 30%."""
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(model_path, use_safetensors=True).train()
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.30, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def step(batch: dict) -> None:
        inputs, labels = collator.torch_mask_tokens(batch["input_ids"].clone())
        model(input_ids=inputs, attention_mask=batch["attention_mask"], labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return _time(step, batches, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Default: the embedded all-MiniLM-L6-v2.")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=144)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per objective (after --warmup).")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--objectives", default=None, help="Comma-separated; default: every installed objective.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from simlm_cli.models.loading import load_tokenizer
    from simlm_cli.models.settings import resolve_model_path
    from simlm_cli.training.pretraining.registry import objective_names

    model_path = resolve_model_path(args.model)
    tokenizer = load_tokenizer(model_path)
    batches = _batches(tokenizer, args.corpus, args.batch_size, args.max_length, args.warmup + args.steps)
    names = args.objectives.split(",") if args.objectives else objective_names()
    print(
        f"model {model_path}\nbatch {args.batch_size}, max length {args.max_length}, {args.steps} timed steps, "
        f"{torch.get_num_threads()} threads, fp32 on cpu"
    )
    results = {}
    for name in names:
        results[name] = bench_objective(name, model_path, tokenizer, batches, args.warmup)
        print(f"{name:>14}: {results[name]:9.1f} tokens/s")
    hf = bench_hf_mlm(model_path, tokenizer, batches, args.warmup)
    print(f"{'HF MLM loop':>14}: {hf:9.1f} tokens/s")
    for name in ("mlm", "rlm"):
        if name in results:
            print(f"{name} / HF MLM loop: {results[name] / hf:.2f}x")


if __name__ == "__main__":
    main()
