"""The CUDA paths end to end, with a table: encode (bf16, fp16, fp32) against sentence-transformers on the same
GPU, a few `train` and `pretrain --objective rlm` steps under bf16 and fp16 (fp16 with loss scaling), and
`index --gpu` / `search --gpu` with faiss-gpu where the installed faiss has GPU support.

    python benchmarks/gpu_check.py [--model DIR] [--passages 2000] [--steps 20] [--output gpu_check.json]

Everything runs from the shipped SciFact data; the training file is built from its train qrels with random
negatives, so no BM25 (Java) is needed. On a machine without a CUDA device it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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
               device: str = "cuda", batch_size: int = 32) -> list[str]:  # fmt: skip
    """The `simlm train` command line the check runs (tests run it on the CPU, and check its CUDA refusal), at the
    paper's 32/144 tokens rather than the model's own (MiniLM: 256)."""
    return ["train", "--model", model, "--train-file", str(train_file), "--corpus", corpus, "--output", str(out),
            "--device", device, "--precision", precision, "--max-steps", str(steps), "--batch-size", str(batch_size),
            "--negatives", "7", "--log-steps", "1",
            "--query-max-length", "32", "--passage-max-length", "144"]  # fmt: skip


def pretrain_args(model: str, corpus: str, out: Path, precision: str, steps: int, device: str = "cuda",
                  batch_size: int = 32) -> list[str]:  # fmt: skip
    """The `simlm pretrain --objective rlm` command line the check runs."""
    return ["pretrain", "--objective", "rlm", "--model", model, "--corpus", corpus, "--output", str(out),
            "--device", device, "--precision", precision, "--max-steps", str(steps), "--batch-size", str(batch_size),
            "--log-steps", "1"]  # fmt: skip


def encode_rows(model: str, count: int) -> list[dict]:
    """passages/s of simlm's Encoder per precision and of sentence-transformers (fp32, fp16) on the GPU, each
    after a warm-up pass; cosine of every variant's vectors to simlm fp32's."""
    import torch
    from sentence_transformers import SentenceTransformer

    from simlm_cli.device import resolve_runtime
    from simlm_cli.io.corpus import iter_corpus
    from simlm_cli.models.encoder import Encoder
    from simlm_cli.models.settings import resolve_model_path, resolve_settings

    passages = [p for _, p in zip(range(count), iter_corpus(str(DATA / "corpus.jsonl")))]
    settings = resolve_settings(model)
    rows, reference = [], None

    def timed(fn) -> tuple[np.ndarray, float]:
        fn()  # warm-up: CUDA kernels, allocator
        torch.cuda.synchronize()
        started = time.perf_counter()
        vectors = fn()
        torch.cuda.synchronize()
        return vectors, len(passages) / (time.perf_counter() - started)

    for precision in ENCODE_PRECISIONS:
        encoder = Encoder(settings, resolve_runtime("cuda", precision))
        vectors, rate = timed(lambda enc=encoder: enc.encode_passages(passages))
        reference = vectors if reference is None else reference
        rows.append(
            {"what": f"encode simlm {precision}", "passages_per_s": rate, "cosine": _cosine(vectors, reference)}
        )
        del encoder
    texts = [p.joined() for p in passages]  # the embedded MiniLM's own layout (concat)
    path = resolve_model_path(model)
    for name, kwargs in (("fp32", {}), ("fp16", {"model_kwargs": {"torch_dtype": torch.float16}})):
        st = SentenceTransformer(path, device="cuda", **kwargs)
        st.max_seq_length = settings.passage_max_length
        vectors, rate = timed(lambda st=st: st.encode(texts, batch_size=256, normalize_embeddings=True))
        rows.append({"what": f"encode sentence-transformers {name}", "passages_per_s": rate,
                     "cosine": _cosine(np.asarray(vectors, dtype=np.float32), reference)})  # fmt: skip
        del st
    return rows


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).mean())


def loss_span(directory: Path) -> str:
    log = directory / "train_log.jsonl"
    if not log.is_file():
        return "no log"
    losses = [json.loads(line).get("loss") for line in log.read_text().splitlines() if '"loss"' in line]
    losses = [x for x in losses if x is not None]
    return f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "no loss logged"


def training_rows(model: str, work: Path, steps: int) -> list[dict]:
    train_file = work / "train.jsonl"
    training_file(train_file)
    corpus = str(DATA / "corpus.jsonl")
    rows = []
    for precision in TRAIN_PRECISIONS:
        out = work / f"train-{precision}"
        code, seconds, tail = simlm(*train_args(model, train_file, corpus, out, precision, steps))
        rows.append({"what": f"train {precision} ({steps} steps, 32 x 8 passages)", "exit": code,
                     "seconds": seconds, "note": loss_span(out) if code == 0 else tail})  # fmt: skip
    for precision in TRAIN_PRECISIONS:
        out = work / f"rlm-{precision}"
        code, seconds, tail = simlm(*pretrain_args(model, corpus, out, precision, steps))
        rows.append({"what": f"pretrain rlm {precision} ({steps} steps, batch 32)", "exit": code,
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Default: the embedded all-MiniLM-L6-v2.")
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--output", default=None, help="Also write the rows as JSON here.")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device is visible to PyTorch; nothing to check", file=sys.stderr)
        return 2
    from simlm_cli.models.settings import resolve_model_path

    model = resolve_model_path(args.model)
    print(
        f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; CPU: {platform.processor() or platform.machine()}"
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for part in (lambda: encode_rows(model, args.passages), lambda: training_rows(model, Path(tmp), args.steps),
                     lambda: faiss_rows(model, Path(tmp))):  # fmt: skip
            try:
                rows += part()
            except Exception as err:  # one broken part must not hide the others' results
                rows.append({"what": "error", "note": f"{type(err).__name__}: {err}"})
    print("| check | passages/s | cosine to simlm fp32 | exit | seconds | note |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        rate = f"{r['passages_per_s']:,.0f}" if "passages_per_s" in r else ""
        cosine = f"{r['cosine']:.6f}" if "cosine" in r else ""
        seconds = f"{r['seconds']:.1f}" if "seconds" in r else ""
        print(f"| {r['what']} | {rate} | {cosine} | {r.get('exit', '')} | {seconds} | {r.get('note', '')} |")
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.get("exit", 0) != 0 or r["what"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
