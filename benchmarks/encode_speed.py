"""simlm encode against every sentence-transformers CPU backend: same model, passages and threads, one run.

Rows: sentence-transformers (ST) `model.encode` with PyTorch fp32 (the baseline every cosine is taken against), ST
`backend="onnx"`, ST `backend="openvino"` and ST's dynamic int8 ONNX export; simlm `encode_corpus` (what
`simlm encode` runs) as its default runs it (`simlm-auto`: `--device auto --precision auto --backend auto`, the
backend and precision it resolves to printed), on PyTorch at fp32 and at bf16 where the CPU computes bf16 natively
(AMX/AVX512-BF16), on OpenVINO at fp32 (unless that is auto's) and at int8. The ONNX/OpenVINO rows need optimum, which pins transformers < 5, so they run in a
separate venv (`bash benchmarks/setup_bench_venv.sh` makes `.venv-bench`) as a child process that this script
drives; without that venv the simlm and ST PyTorch rows still run.

Every row is loaded and warmed up first, then all rows are timed in alternation, `--repeats` rounds, and the best
wall-clock rate of each is kept, so none gets a colder start or a quieter machine. Ratios printed: simlm PyTorch
fp32 / ST PyTorch fp32, and simlm's default (auto) and simlm int8 / the fastest ST backend whose mean cosine to ST
PyTorch is >= 0.99.

python benchmarks/encode_speed.py [--passages 1000] [--threads 2] [--repeats 3] [--model DIR] [--corpus PATH]
                                  [--st-python .venv-bench/bin/python] [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT / "simlm_cli" / "data" / "scifact" / "corpus.jsonl"
DEFAULT_ST_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
CHILD = Path(__file__).resolve().parent / "st_backends.py"
WARMUP_PASSAGES = 32
ST_BATCH_SIZE = 32  # sentence-transformers' default, as its users run it
MIN_COSINE = 0.99  # an ST backend below this mean cosine to ST PyTorch fp32 is not a fair speed baseline
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
BASELINE = "st-torch-fp32"


@dataclass(frozen=True)
class Cpu:
    model: str
    flags: frozenset[str]

    def describe(self) -> str:
        present = [f for f in RELEVANT_FLAGS if f in self.flags]
        absent = [f for f in RELEVANT_FLAGS if f not in self.flags]
        return f"CPU: {self.model}; flags: {' '.join(present) or '-'} (absent: {' '.join(absent) or '-'})"


def parse_cpuinfo(text: str) -> Cpu:
    """The first processor's model name and flags from /proc/cpuinfo text (x86 `flags`, ARM `Features`)."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return Cpu(model or platform.processor() or platform.machine(), flags)


def read_cpu() -> Cpu:
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8"))
    except OSError:
        return Cpu(platform.processor() or platform.machine(), frozenset())


def quantization_config(cpu: Cpu, machine: str | None = None) -> str:
    """ST's dynamic int8 config for this CPU: avx512_vnni where VNNI exists, arm64 on ARM, avx2 otherwise."""
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64"):
        return "arm64"
    return "avx512_vnni" if "avx512_vnni" in cpu.flags else "avx2"


# ----------------------------------------------------------------------------------------------------------------
# Rows: each is loaded and warmed up once, then `run()` encodes the passages: (wall s, process CPU s, vectors).
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    run: Callable[[], tuple[float, float, np.ndarray]]
    rates: list[float] = field(default_factory=list)  # passages per wall-clock second
    cpu_rates: list[float] = field(default_factory=list)  # passages per CPU second of the encoding process
    vectors: np.ndarray | None = None


def simlm_row(name: str, runtime: Any, subset: Path, warm: Path, model: str | None, work: Path) -> Row:
    from simlm_cli.io.embeddings import EmbeddingReader
    from simlm_cli.options.shared import EncoderFlags
    from simlm_cli.pipeline.encode import EncodeConfig, encode_corpus

    out = work / f"{name}.emb"

    def encode(corpus: Path) -> tuple[float, float, np.ndarray]:
        out.unlink(missing_ok=True)
        cpu = time.process_time()
        summary = encode_corpus(
            EncodeConfig(corpus=str(corpus), encoder=EncoderFlags(model=model), output=str(out)), runtime
        )
        cpu = time.process_time() - cpu  # includes loading the model (encode_corpus loads it): against simlm
        with open(out, "rb") as handle:
            vectors = np.concatenate([v for _, v in EmbeddingReader(handle, out.name)])
        return summary["seconds"], cpu, vectors  # encode_corpus's own clock: model loading is outside it

    encode(warm)
    return Row(name, lambda: encode(subset))


def st_torch_row(model_path: str, texts: list[str]) -> tuple[Row, int]:
    """The baseline row, and its max_seq_length (the child's backends truncate where it does)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    model.encode(texts[:WARMUP_PASSAGES], batch_size=ST_BATCH_SIZE)

    def encode() -> tuple[float, float, np.ndarray]:
        cpu, started = time.process_time(), time.perf_counter()
        vectors = model.encode(texts, batch_size=ST_BATCH_SIZE, convert_to_numpy=True)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        return wall, cpu, np.asarray(vectors, dtype=np.float32)

    return Row(BASELINE, encode), model.max_seq_length


class StChild:
    """The bench venv's `st_backends.py`, kept alive so its rows can be timed in turn with the local ones."""

    def __init__(self, python: Path, model: str, texts: list[str], threads: int, quant: str, max_len: int, work: Path):
        (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        self.work, self.log = work, work / "st_child.log"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "RAYON_NUM_THREADS": str(threads)}
        command = [str(python), str(CHILD), "--model", model, "--texts", str(work / "texts.json"), "--threads",
                   str(threads), "--quantization", quant, "--max-seq-length", str(max_len), "--out", str(work),
                   "--warmup", str(WARMUP_PASSAGES)]  # fmt: skip
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            text=True, env=env)  # fmt: skip

    def ready(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RuntimeError(f"the bench venv's child exited ({self.process.returncode}): {self.tail()}")
        return json.loads(line)

    def tail(self) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else "no output"

    def row(self, name: str) -> Row:
        def encode() -> tuple[float, float, np.ndarray]:
            self.process.stdin.write(f"run {name}\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
            if not line:
                self.process.wait()
                raise RuntimeError(f"the bench venv's child died running {name}: {self.tail()}")
            answer = json.loads(line)
            return answer["seconds"], answer["cpu_seconds"], np.load(self.work / f"{name}.npy")

        return Row(name, encode)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=60)


# ----------------------------------------------------------------------------------------------------------------
def write_subset(source: str, path: Path, count: int) -> list[str]:
    """The first `count` passages of `source` as BEIR JSONL at `path`; returns them as ST reads them."""
    from simlm_cli.io.corpus import iter_corpus

    texts = []
    with open(path, "w", encoding="utf-8") as handle:
        for p in itertools.islice(iter_corpus(source), count):
            handle.write(json.dumps({"_id": p.id, "title": p.title, "text": p.text}) + "\n")
            texts.append(p.joined())  # title + text, the MiniLM settings' passage layout
    return texts


def cosines(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.sum(vectors * reference, axis=1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))


def simlm_runtimes(notes: list[str]) -> dict[str, Any]:
    """The simlm rows' runtimes: its default (auto, as `simlm encode` resolves it here), PyTorch fp32 always and bf16
    where the CPU has it natively, OpenVINO fp32 unless auto is that already, and int8."""
    from simlm_cli.device import Backend, Precision, Runtime, cpu_has_fast_bf16, resolve_runtime

    auto = resolve_runtime("cpu", Precision.auto, backend=Backend.auto)
    notes.append(f"simlm-auto is {auto.backend.value} {auto.precision.value} on this CPU")
    chosen = {"simlm-auto": auto, "simlm-torch-fp32": Runtime("cpu", Precision.fp32, Backend.torch)}
    if cpu_has_fast_bf16():
        chosen["simlm-torch-bf16"] = Runtime("cpu", Precision.bf16, Backend.torch)
    else:
        notes.append("simlm torch bf16 skipped: this CPU has neither AMX nor AVX512-BF16 (bf16 would be emulated)")
    openvino_fp32 = Runtime("cpu", Precision.fp32, Backend.openvino)
    if auto != openvino_fp32:
        chosen["simlm-openvino-fp32"] = openvino_fp32
    chosen["simlm-int8"] = Runtime("cpu", Precision.int8)
    return chosen


def time_rows(rows: list[Row], repeats: int) -> None:
    """`repeats` rounds over every row, alternating (the order reversed every other round); best rate kept."""
    for round_ in range(repeats):
        for row in rows if round_ % 2 == 0 else rows[::-1]:
            seconds, cpu_seconds, vectors = row.run()
            row.rates.append(len(vectors) / seconds)
            row.cpu_rates.append(len(vectors) / cpu_seconds)
            row.vectors = vectors


def summarise(rows: list[Row]) -> list[dict]:
    reference = next(r for r in rows if r.name == BASELINE).vectors
    table = []
    for row in rows:
        cos = cosines(row.vectors, reference)
        table.append({"row": row.name, "passages_per_s": max(row.rates), "runs": [round(r, 2) for r in row.rates],
                      "passages_per_cpu_s": max(row.cpu_rates), "mean_cosine": float(cos.mean()),
                      "min_cosine": float(cos.min())})  # fmt: skip
    return table


def ratios(table: list[dict], key: str = "passages_per_s") -> dict:
    """The issue's ratios, by `key` (wall-clock or CPU-time rate): simlm PyTorch fp32 / ST PyTorch fp32, and simlm's
    default (auto) and int8 / the fastest ST row whose mean cosine to ST PyTorch is >= MIN_COSINE."""
    rate = {r["row"]: r[key] for r in table}
    st_ok = [r for r in table if r["row"].startswith("st-") and r["mean_cosine"] >= MIN_COSINE]
    fastest = max(st_ok, key=lambda r: r[key])
    found = {
        "simlm_torch_fp32_over_st_torch_fp32": rate["simlm-torch-fp32"] / rate[BASELINE],
        "fastest_st": fastest["row"],
    }
    for row in ("simlm-auto", "simlm-int8"):
        if row in rate:
            found[f"{row.replace('-', '_')}_over_fastest_st"] = rate[row] / fastest[key]
    return found


def print_report(table: list[dict], found: dict[str, dict], notes: list[str]) -> None:
    print(f"| row | passages/s (wall) | runs | passages / CPU s | mean cosine to {BASELINE} | min cosine |")
    print("|---|---:|---|---:|---:|---:|")
    for r in table:
        runs = ", ".join(f"{x:.1f}" for x in r["runs"])
        print(f"| {r['row']} | {r['passages_per_s']:.1f} | {runs} | {r['passages_per_cpu_s']:.2f} | "
              f"{r['mean_cosine']:.6f} | {r['min_cosine']:.6f} |")  # fmt: skip
    for note in notes:
        print(f"note: {note}")
    for clock, ratio in found.items():
        print(f"ratio ({clock}) simlm-torch-fp32 / {BASELINE}: {ratio['simlm_torch_fp32_over_st_torch_fp32']:.2f}x "
              "(target >= 1.0)")  # fmt: skip
        for row, target in (("simlm-auto", 1.0), ("simlm-int8", 1.3)):
            key = f"{row.replace('-', '_')}_over_fastest_st"
            if key in ratio:
                print(f"ratio ({clock}) {row} / {ratio['fastest_st']} (fastest ST row with mean cosine >= "
                      f"{MIN_COSINE}): {ratio[key]:.2f}x (target >= {target})")  # fmt: skip
            else:
                print(f"ratio ({clock}) {row} / {ratio['fastest_st']}: n/a (no {row} row)")


def start_child(args: argparse.Namespace, model_path: str, texts: list[str], cpu: Cpu, max_len: int, work: Path,
                notes: list[str]) -> StChild | None:  # fmt: skip
    python = Path(args.st_python)
    if not python.exists():
        notes.append(f"no bench venv at {python}: ST onnx/openvino/int8 rows skipped. Make it with "
                     "`bash benchmarks/setup_bench_venv.sh` (or pass --st-python)")  # fmt: skip
        return None
    quant = quantization_config(cpu)
    print(f"ST int8: export_dynamic_quantized_onnx_model config {quant!r} (chosen from the CPU flags)")
    child_dir = work / "st"
    child_dir.mkdir()
    return StChild(python, model_path, texts, args.threads, quant, max_len, child_dir)


def child_rows(child: StChild | None, notes: list[str]) -> tuple[list[Row], dict]:
    if child is None:
        return [], {}
    try:
        ready = child.ready()
    except RuntimeError as err:
        notes.append(f"ST backend rows skipped: {err}")
        return [], {}
    for name, error in ready["failed"].items():
        notes.append(f"{name} skipped: it failed to load in the bench venv: {error}")
    return [child.row(name) for name in ready["backends"]], ready["versions"]


def measure(args: argparse.Namespace, cpu: Cpu, notes: list[str]) -> tuple[list[dict], dict]:
    from simlm_cli.models.settings import resolve_model_path

    model_path = resolve_model_path(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subset, warm = work / "corpus.jsonl", work / "warm.jsonl"
        texts = write_subset(args.corpus, subset, args.passages)
        write_subset(str(subset), warm, WARMUP_PASSAGES)
        baseline, max_length = st_torch_row(model_path, texts)
        child = start_child(args, model_path, texts, cpu, max_length, work, notes)
        try:
            rows = [baseline]
            rows += [simlm_row(name, r, subset, warm, args.model, work) for name, r in simlm_runtimes(notes).items()]
            extra, versions = child_rows(child, notes)
            time_rows(rows + extra, args.repeats)
        finally:
            if child is not None:
                child.close()
        return summarise(rows + extra), versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1000, help="The first N passages of --corpus.")
    parser.add_argument("--model", default=None, help="Default: the embedded all-MiniLM-L6-v2.")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--threads", type=int, default=2, help="Threads for every row (torch, ORT, OpenVINO).")
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds; the best rate of each row is kept.")
    parser.add_argument("--st-python", default=str(DEFAULT_ST_PYTHON), help="The bench venv's python.")
    parser.add_argument("--json", default=None, help="Also write the rows, ratios and CPU as JSON here.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # the tokenizers' thread pool, before it starts
    import torch

    torch.set_num_threads(args.threads)
    cpu, notes = read_cpu(), []
    print(cpu.describe())
    print(f"threads {args.threads} ({os.cpu_count()} cores); first {args.passages} passages of {args.corpus}; "
          f"best of {args.repeats} alternated rounds")  # fmt: skip
    table, versions = measure(args, cpu, notes)
    # Wall clock is what a user waits; CPU time is steadier on a shared machine (but counts spinning threads).
    found = {"wall": ratios(table, "passages_per_s"), "cpu": ratios(table, "passages_per_cpu_s")}
    print_report(table, found, notes)
    if args.json:
        from simlm_cli.io.files import atomic_output

        report = {"cpu": {"model": cpu.model, "flags": [f for f in RELEVANT_FLAGS if f in cpu.flags]},
                  "threads": args.threads, "passages": args.passages, "corpus": args.corpus,
                  "repeats": args.repeats, "rows": table, "ratios": found, "notes": notes,
                  "bench_venv_versions": versions}  # fmt: skip
        with atomic_output(args.json) as handle:
            handle.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
