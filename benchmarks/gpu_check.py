"""The CUDA paths end to end, in one table (one call: under 8 minutes on an H200):

- the model's ceiling: forward + pooling of pre-tokenized, length-sorted batches already on the device, at fp16,
  bf16 and fp32 and two batch sizes;
- simlm's `Encoder` as `simlm encode` runs it (chunks tokenized on a background thread, default token-budget
  batches), per precision, at fixed batch sizes, and without the background thread;
- sentence-transformers fp32 / fp16 on the same passages;
- the CLI end to end: `simlm encode --help`, a 10-passage encode and the whole corpus, wall time with start-up;
- search: the torch backend on the device against faiss-cpu's flat search on the same index (SciFact's passages
  plus `--search-rows` random unit vectors), queries/s and how many queries' top 1000 agree;
- a few `train` and `pretrain --objective rlm` steps under bf16 and fp16 (fp16 with loss scaling): tokens/s;
- `index --gpu` / `search --gpu` with faiss-gpu where the installed faiss has GPU support.

    python benchmarks/gpu_check.py [--model DIR] [--passages N] [--steps 20] [--search-rows 1000000] [--output J]
    python benchmarks/gpu_check.py --quick --device cpu --model DIR   # a smoke test of the check (tests run it)

Everything runs from the shipped SciFact data; the training file is built from its train qrels with random
negatives, so no BM25 (Java) is needed. Without a CUDA device (and without --quick --device cpu) it says so and
exits 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from simlm_cli.errors import first_line

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "simlm_cli" / "data" / "scifact"
# Named, never taken from the Precision enum: int8 (dynamic quantisation) is a CPU precision and must not be
# tried on CUDA. fp16 trains with a GradScaler (loss scaling), bf16 without.
ENCODE_PRECISIONS = ("fp32", "bf16", "fp16")
TRAIN_PRECISIONS = ("bf16", "fp16")


def simlm(*args: str, env: dict | None = None) -> tuple[int, float, str]:
    """Run `python -m simlm_cli ARGS`; (exit code, seconds, stderr tail)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "simlm_cli", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    tail = " | ".join(done.stderr.strip().splitlines()[-2:])
    return done.returncode, time.perf_counter() - started, tail


def training_file(path: Path, data: Path = DATA, split: str = "train", seed: int = 0) -> None:
    """`data`'s judged queries of `split` with their positives and up to 15 random negatives each."""
    queries = {}
    for line in (data / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        queries[record["_id"]] = record["text"]
    ids = [json.loads(line)["_id"] for line in (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    positives: dict[str, list[str]] = {}
    for line in (data / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, docid, _ = line.split("\t")
        positives.setdefault(qid, []).append(docid)
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for qid, pos in positives.items():
            draw = rng.choice(len(ids), min(16, len(ids)), replace=False)
            negatives = [ids[j] for j in draw if ids[j] not in pos][:15]
            row = {"qid": qid, "query": queries[qid], "positives": pos, "negatives": negatives}
            handle.write(json.dumps(row) + "\n")


def train_args(model: str, train_file: Path, corpus: str, out: Path, precision: str, steps: int,
               device: str = "cuda", batch_size: int = 32, max_length: int | None = None) -> list[str]:  # fmt: skip
    """The `simlm train` command line the check runs (tests run it on the CPU, and check its CUDA refusal);
    at the paper's 32/144 tokens rather than the model's own (MiniLM: 256); `max_length` shortens passages for a small
    test model."""
    return ["train", "--model", model, "--train-file", str(train_file), "--corpus", corpus, "--output", str(out),
            "--device", device, "--precision", precision, "--max-steps", str(steps), "--batch-size", str(batch_size),
            "--negatives", "7", "--log-steps", "1",
            "--query-max-length", "32", "--passage-max-length", str(max_length or 144)]  # fmt: skip


def pretrain_args(model: str, corpus: str, out: Path, precision: str, steps: int, device: str = "cuda",
                  batch_size: int = 32, max_length: int | None = None) -> list[str]:  # fmt: skip
    """The `simlm pretrain --objective rlm` command line the check runs."""
    length = ["--max-length", str(max_length)] if max_length else []
    return ["pretrain", "--objective", "rlm", "--model", model, "--corpus", corpus, "--output", str(out),
            "--device", device, "--precision", precision, "--max-steps", str(steps), "--batch-size", str(batch_size),
            "--log-steps", "1", *length]  # fmt: skip


def passages_of(count: int | None, corpus: Path = DATA / "corpus.jsonl") -> list:
    from simlm_cli.io.corpus import iter_corpus

    return list(itertools.islice(iter_corpus(str(corpus)), count))


class Clock:
    """Seconds of `fn()` after one warm-up call (kernels, allocator, every batch shape), the device synchronised
    before and after."""

    def __init__(self, device: str):
        import torch

        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def __call__(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        fn()
        self.sync()
        started = time.perf_counter()
        result = fn()
        self.sync()
        return result, time.perf_counter() - started


def ceiling_rows(model: str, passages: list, device: str, precisions: tuple, batch_sizes: tuple) -> list[dict]:
    """The model's own speed: forward + pooling of pre-tokenized, length-sorted batches already on the device
    (tokenization and host-to-device copies left out), per precision and batch size."""
    import torch

    from simlm_cli.device import resolve_runtime
    from simlm_cli.models.batching import length_sorted_batches
    from simlm_cli.models.biencoder import BiEncoder, embed
    from simlm_cli.models.settings import resolve_settings

    settings, clock, rows = resolve_settings(model), Clock(device), []
    for precision in precisions:
        encoder = BiEncoder.load(settings, resolve_runtime(device, precision))
        tokens = encoder.tokenize_passages(passages)
        lengths = np.array([len(x) for x in tokens["input_ids"]])
        for size in batch_sizes:
            batches = [{k: v.to(device) for k, v in encoder._pad(tokens, r).items()}
                       for r in length_sorted_batches(lengths, size)]  # fmt: skip

            def forward(batches=batches, encoder=encoder) -> None:
                with torch.inference_mode(), encoder.runtime.autocast():
                    for batch in batches:
                        embed(encoder.encoder, batch, settings)

            _, seconds = clock(forward)
            rows.append({"what": f"forward-only ceiling {precision}, batch {size} (pre-tokenized, on the device)",
                         "passages_per_s": len(passages) / seconds})  # fmt: skip
        del encoder
    return rows


def encode_rows(
    model: str, passages: list, device: str, precisions: tuple, batch_sizes: tuple
) -> tuple[list[dict], np.ndarray]:
    """passages/s of simlm's Encoder as `simlm encode` runs it (chunks of 2048 tokenized on a background thread
    ahead of the model), per precision at its default batching (a token budget on CUDA) and at fixed batch sizes,
    and the first precision without the background thread; cosine of each to the first row's vectors (returned
    with the rows)."""
    from simlm_cli.device import resolve_runtime
    from simlm_cli.models.biencoder import BiEncoder
    from simlm_cli.models.settings import resolve_settings

    settings, clock, rows, reference = resolve_settings(model), Clock(device), [], None
    chunks = [passages[i : i + 2048] for i in range(0, len(passages), 2048)]
    variants = [(p, None, 1) for p in precisions] + [(precisions[0], None, 0)]
    variants += [(p, size, 1) for p in precisions[:2] for size in batch_sizes]
    for precision, size, prefetch in variants:
        encoder = BiEncoder.load(settings, resolve_runtime(device, precision), batch_size=size)

        def run(encoder=encoder, prefetch=prefetch) -> np.ndarray:
            return np.concatenate([v for _, v in encoder.encode_stream(chunks, prefetch=prefetch)])

        vectors, seconds = clock(run)
        reference = vectors if reference is None else reference
        batching = f"batch {size}" if size else f"default batches ({encoder.batch_size or encoder.max_batch_tokens} "
        batching += "" if size else ("texts)" if encoder.batch_size else "tokens)")
        rows.append({"what": f"encode simlm {precision}, {batching}, prefetch {prefetch}",
                     "passages_per_s": len(passages) / seconds, "cosine": _cosine(vectors, reference)})  # fmt: skip
        del encoder
    return rows, reference


def st_rows(model: str, passages: list, device: str, reference: np.ndarray | None) -> list[dict]:
    """sentence-transformers on the same passages (its own layout, concat), fp32 and (CUDA) fp16, batch 256."""
    import torch
    from sentence_transformers import SentenceTransformer

    from simlm_cli.models.settings import resolve_model_path, resolve_settings

    settings, clock, rows = resolve_settings(model), Clock(device), []
    texts = [p.joined() for p in passages]
    dtypes = (("fp32", {}), ("fp16", {"model_kwargs": {"torch_dtype": torch.float16}}))
    for name, kwargs in dtypes if device.startswith("cuda") else dtypes[:1]:
        st = SentenceTransformer(resolve_model_path(model), device=device, **kwargs)
        st.max_seq_length = settings.passage_max_length
        vectors, seconds = clock(lambda st=st: st.encode(texts, batch_size=256, normalize_embeddings=True))
        row = {"what": f"encode sentence-transformers {name}, batch 256", "passages_per_s": len(passages) / seconds}
        if reference is not None:
            row["cosine"] = _cosine(np.asarray(vectors, dtype=np.float32), reference)
        rows.append(row)
        del st
    return rows


def cli_rows(model: str, work: Path, device: str, precision: str, corpus: Path) -> list[dict]:
    """`simlm encode` as a user runs it: `--help`, a 10-passage encode and the whole corpus, wall time including
    start-up (imports, device, model), and the encoding time the command itself reports."""
    ten = work / "ten.jsonl"
    ten.write_text("".join(corpus.read_text(encoding="utf-8").splitlines(keepends=True)[:10]), encoding="utf-8")
    rows = []
    code, seconds, tail = simlm("encode", "--help")
    rows.append({"what": "CLI simlm encode --help", "exit": code, "seconds": seconds})
    for name, source in (("10 passages", ten), ("whole corpus", corpus)):
        out = work / f"cli-{name.split()[0]}.emb"
        code, seconds, tail = simlm("encode", "--model", model, "--corpus", str(source), "--output", str(out),
                                    "--device", device, "--precision", precision)  # fmt: skip
        rows.append({"what": f"CLI simlm encode {name} ({device}, {precision}), wall incl. start-up", "exit": code,
                     "seconds": seconds, "note": tail})  # fmt: skip
    return rows


def search_rows(model: str, device: str, corpus_vectors: np.ndarray, extra_rows: int, k: int = 1000) -> list[dict]:
    """queries/s of the torch backend on `device` and of faiss-cpu's flat search on the same index (SciFact's
    passages, then `extra_rows` random unit vectors), every query of SciFact; how many queries' top k agree."""
    from simlm_cli.device import resolve_runtime
    from simlm_cli.index.torch_search import TorchFlatSearch
    from simlm_cli.io.queries import read_queries
    from simlm_cli.models.biencoder import BiEncoder
    from simlm_cli.models.settings import resolve_settings

    queries = list(read_queries(str(DATA / "queries.jsonl")).values())
    encoder = BiEncoder.load(resolve_settings(model), resolve_runtime(device, "fp32"))
    q = encoder.encode_queries(queries)
    noise = np.random.default_rng(0).standard_normal((extra_rows, corpus_vectors.shape[1])).astype(np.float32)
    vectors = np.concatenate([corpus_vectors, noise / np.linalg.norm(noise, axis=1, keepdims=True)])
    clock, rows = Clock(device), []
    search = TorchFlatSearch(vectors, device)
    (scores, found), seconds = clock(lambda: search.search(q, k))
    rows.append({"what": f"search torch {device}, {len(vectors):,} x {vectors.shape[1]}, top {k}",
                 "queries_per_s": len(q) / seconds, "note": search.describe()})  # fmt: skip
    try:
        from simlm_cli.index.dense import faiss_module

        faiss = faiss_module()
    except ImportError as err:
        return rows + [{"what": "search faiss-cpu", "note": f"skipped: faiss not importable ({err})"}]
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    (faiss_scores, faiss_found), seconds = clock(lambda: index.search(q, min(k, len(vectors))))
    same = int((found == faiss_found).all(1).sum())
    same_set = sum(set(a) == set(b) for a, b in zip(found.tolist(), faiss_found.tolist()))
    rows.append({"what": f"search faiss-cpu, same index, top {k}", "queries_per_s": len(q) / seconds,
                 "note": f"torch's top {k}: the same ids for {same_set}/{len(q)} queries, in the same order for "
                 f"{same}; max score difference {float(np.abs(scores - faiss_scores).max()):.1e}"})  # fmt: skip
    return rows


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).mean())


def loss_span(directory: Path) -> str:
    log = directory / "train_log.jsonl"
    if not log.is_file():
        return "no log"
    records = [json.loads(line) for line in log.read_text().splitlines() if '"loss"' in line]
    losses = [r["loss"] for r in records if r.get("loss") is not None]
    rates = [r["tokens_per_s"] for r in records[1:] if "tokens_per_s" in r]  # the first step warms up
    speed = f", {np.median(rates):,.0f} tokens/s (median)" if rates else ""
    return f"loss {losses[0]:.3f} -> {losses[-1]:.3f}{speed}" if losses else "no loss logged"


def training_rows(
    model: str, work: Path, steps: int, device: str, precisions: tuple, batch_size: int, max_length: int | None
) -> list[dict]:
    """A few `train` and `pretrain --objective rlm` steps per precision: exit code, seconds, loss, tokens/s."""
    train_file = work / "train.jsonl"
    training_file(train_file)
    corpus = str(DATA / "corpus.jsonl")
    rows = []
    for precision in precisions:
        out = work / f"train-{precision}"
        code, seconds, tail = simlm(
            *train_args(model, train_file, corpus, out, precision, steps, device, batch_size, max_length)
        )
        rows.append({"what": f"train {precision} ({steps} steps, {batch_size} x 8 passages)", "exit": code,
                     "seconds": seconds, "note": loss_span(out) if code == 0 else tail})  # fmt: skip
    for precision in precisions:
        out = work / f"rlm-{precision}"
        code, seconds, tail = simlm(
            *pretrain_args(model, corpus, out, precision, steps, device, batch_size, max_length)
        )
        rows.append({"what": f"pretrain rlm {precision} ({steps} steps, batch {batch_size})", "exit": code,
                     "seconds": seconds, "note": loss_span(out) if code == 0 else tail})  # fmt: skip
    return rows


def faiss_rows(model: str, work: Path) -> list[dict]:
    try:
        import faiss

        gpus = faiss.get_num_gpus()
    except ImportError as err:
        return [{"what": "index/search --gpu", "note": f"skipped: faiss not importable ({err})"}]
    if gpus == 0:
        return [
            {"what": "index/search --gpu", "note": "skipped: the installed faiss has no GPU support or sees no GPU"}
        ]
    emb, rows = work / "corpus.emb", []
    code, seconds, tail = simlm("encode", "--model", model, "--corpus", str(DATA / "corpus.jsonl"), "--output",
                                str(emb), "--device", "cuda")  # fmt: skip
    rows.append(
        {"what": "encode CLI (cuda, auto precision, whole corpus)", "exit": code, "seconds": seconds, "note": tail}
    )
    for kind in ("flat", "ivfpq"):
        index = work / f"idx-{kind}"
        code, seconds, tail = simlm("index", str(emb), "--output", str(index), "--type", kind, "--gpu")
        rows.append({"what": f"index --gpu --type {kind}", "exit": code, "seconds": seconds, "note": tail})
        run = work / f"{kind}.trec"
        code, seconds, tail = simlm("search", "--index", str(index), "--queries", str(DATA / "queries.jsonl"),
                                    "--qrels", str(DATA / "qrels" / "test.tsv"), "--output", str(run), "--gpu",
                                    "--device", "cuda")  # fmt: skip
        rows.append({"what": f"search --gpu ({kind})", "exit": code, "seconds": seconds, "note": tail})
    return rows


# quick: passages cut to 64 tokens for training, so that a test's small model (128 positions) takes them
QUICK = {"passages": 48, "steps": 2, "search_rows": 2000, "batch_sizes": (8, 32), "train_batch": 4, "max_length": 64}
FULL = {"passages": None, "steps": 20, "search_rows": 1_000_000, "batch_sizes": (256, 1024), "train_batch": 32,
        "max_length": None}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Default: the embedded all-MiniLM-L6-v2.")
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (with --quick: the test's).")
    parser.add_argument("--quick", action="store_true", help="A few passages, steps and rows: a smoke test.")
    parser.add_argument("--passages", type=int, default=None, help="Default: the whole corpus (quick: 48).")
    parser.add_argument("--steps", type=int, default=None, help="Training steps per row (default 20; quick: 2).")
    parser.add_argument("--search-rows", type=int, default=None,
                        help="Random unit vectors added to the searched index (default 1,000,000; quick: 2,000).")  # fmt: skip
    parser.add_argument("--output", default=None, help="Also write the rows as JSON here.")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for name in ("passages", "steps", "search_rows"):
        if getattr(args, name) is None:
            setattr(args, name, preset[name])
    args.batch_sizes, args.train_batch, args.max_length = (
        preset[k] for k in ("batch_sizes", "train_batch", "max_length")
    )
    return args


def check(args: argparse.Namespace, model: str, work: Path) -> list[dict]:
    """Every part in turn; one broken part must not hide the others' results."""
    cuda = args.device.startswith("cuda")
    precisions = ENCODE_PRECISIONS[::-1] if cuda else ("fp32",)  # fp16 first: the rows' reference precision
    passages = passages_of(args.passages)
    corpus = work / "corpus.jsonl"
    lines = (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    corpus.write_text("".join(lines[: args.passages]), encoding="utf-8")  # the CLI rows' corpus: the same passages
    rows: list[dict] = []
    found: dict[str, Any] = {}

    def encode() -> list[dict]:
        encoded, found["vectors"] = encode_rows(model, passages, args.device, precisions, args.batch_sizes)
        return encoded

    parts = (
        lambda: ceiling_rows(model, passages, args.device, precisions, args.batch_sizes),
        encode,
        lambda: st_rows(model, passages, args.device, found.get("vectors")),
        lambda: cli_rows(model, work, args.device, precisions[0], corpus),
        lambda: search_rows(model, args.device, found["vectors"], args.search_rows),
        lambda: training_rows(
            model,
            work,
            args.steps,
            args.device,
            TRAIN_PRECISIONS if cuda else ("fp32",),
            args.train_batch,
            args.max_length,
        ),
        lambda: faiss_rows(model, work) if cuda else [],
    )
    for part in parts:
        started = time.perf_counter()
        try:
            rows += part()
        except Exception as err:
            rows.append({"what": "error", "note": f"{type(err).__name__}: {first_line(err)}"})
        print(f"gpu_check: part done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return rows


def print_table(rows: list[dict]) -> None:
    print("| check | passages/s | queries/s | cosine to the first encode row | exit | seconds | note |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        rate = f"{r['passages_per_s']:,.0f}" if "passages_per_s" in r else ""
        qps = f"{r['queries_per_s']:,.1f}" if "queries_per_s" in r else ""
        cosine = f"{r['cosine']:.6f}" if "cosine" in r else ""
        seconds = f"{r['seconds']:.1f}" if "seconds" in r else ""
        print(f"| {r['what']} | {rate} | {qps} | {cosine} | {r.get('exit', '')} | {seconds} | {r.get('note', '')} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device is visible to PyTorch; nothing to check", file=sys.stderr)
        return 2
    if not args.device.startswith("cuda") and not args.quick:
        print("gpu_check: error: --device cpu is for --quick (a smoke test of the check itself)", file=sys.stderr)
        return 2
    from simlm_cli.environment import cpu_info
    from simlm_cli.models.settings import resolve_model_path

    model = resolve_model_path(args.model)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"GPU: {gpu}; torch {torch.__version__}; CPU: {cpu_info()['model']} ({os.cpu_count()} cores)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = check(args, model, Path(tmp))
    print_table(rows)
    print(f"gpu_check: {time.perf_counter() - started:.0f} s in all")
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.get("exit", 0) != 0 or r["what"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
