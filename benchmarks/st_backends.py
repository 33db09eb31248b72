"""sentence-transformers' CPU backends, timed on request: the child half of `encode_speed.py`.

It runs in the bench venv (`benchmarks/setup_bench_venv.sh`), whose optimum/optimum-intel need transformers < 5,
so it imports nothing from simlm. It loads every backend it is asked for (exporting ONNX/OpenVINO from a copy of
the local model directory, so nothing is written beside the installed model and no network is needed), warms each
up, then answers its parent one JSON line per command on stdout:

    stdin  `run NAME`  ->  {"backend": NAME, "count": N, "seconds": wall, "cpu_seconds": process CPU}
                            (the vectors of the latest run go to OUT/NAME.npy)
    stdin  `quit`      ->  exits

The first line it writes is {"ready": true, "backends": [...], "failed": {NAME: error}, "versions": {...}}. Library
chatter that goes to stdout is sent to stderr, so stdout carries the protocol only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The backends this child knows, in the order they are loaded and reported.
BACKENDS = ("st-onnx-fp32", "st-openvino", "st-onnx-int8")
BATCH_SIZE = 32  # sentence-transformers' default, as its users run it


def _protocol_stream():
    """A private copy of stdout for the protocol; fd 1 then points at stderr, for whatever libraries print."""
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    return stream


def _onnx_kwargs(threads: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return {"provider": "CPUExecutionProvider", "session_options": options}


def _load_onnx(model_dir: Path, threads: int, quantization: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu", backend="onnx", model_kwargs=_onnx_kwargs(threads))


def _load_openvino(model_dir: Path, threads: int, quantization: str):
    from sentence_transformers import SentenceTransformer

    ov_config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    return SentenceTransformer(str(model_dir), device="cpu", backend="openvino", model_kwargs={"ov_config": ov_config})


def _load_onnx_int8(model_dir: Path, threads: int, quantization: str):
    """Dynamic int8 quantisation of the ONNX export, written into the (copied) model dir, then loaded by name."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    fp32 = _load_onnx(model_dir, threads, quantization)
    export_dynamic_quantized_onnx_model(fp32, quantization, str(model_dir))
    files = sorted((model_dir / "onnx").glob(f"model_*{quantization}.onnx"))
    if not files:
        raise RuntimeError(f"export_dynamic_quantized_onnx_model wrote no onnx/model_*{quantization}.onnx")
    kwargs = {**_onnx_kwargs(threads), "file_name": f"onnx/{files[0].name}"}
    return SentenceTransformer(str(model_dir), device="cpu", backend="onnx", model_kwargs=kwargs)


LOADERS: dict[str, Callable] = {
    "st-onnx-fp32": _load_onnx,
    "st-openvino": _load_openvino,  # its default precision: bf16 where the CPU has bf16 natively
    "st-onnx-int8": _load_onnx_int8,
}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("sentence-transformers", "transformers", "torch", "onnxruntime", "openvino", "optimum",
                 "optimum-onnx", "optimum-intel"):  # fmt: skip
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _encode(model, texts: list[str]):
    return model.encode(texts, batch_size=BATCH_SIZE, convert_to_numpy=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Local sentence-transformers model directory.")
    parser.add_argument("--texts", required=True, help="JSON list of the passages to encode.")
    parser.add_argument("--warmup", type=int, default=32, help="Passages encoded once by each backend first.")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--quantization", required=True, help="avx512_vnni, avx512, avx2 or arm64.")
    parser.add_argument("--max-seq-length", type=int, default=None)
    parser.add_argument("--out", required=True, help="Directory for the model copy and the vectors.")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    protocol = _protocol_stream()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)  # pooling and normalisation still run in torch
    out = Path(args.out)
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    models, failed = {}, {}
    for name in args.backends.split(","):
        copy = out / f"model-{name}"  # each backend its own copy: exports write into the directory
        shutil.copytree(args.model, copy)
        try:
            model = LOADERS[name](copy, args.threads, args.quantization)
            if args.max_seq_length:
                model.max_seq_length = args.max_seq_length
            _encode(model, texts[: args.warmup])
            models[name] = model
        except Exception as err:  # reported to the parent, which prints it as a row's note
            failed[name] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
    protocol.write(json.dumps({"ready": True, "backends": list(models), "failed": failed,
                               "versions": _versions()}) + "\n")  # fmt: skip
    for line in sys.stdin:
        command = line.split()
        if command[:1] == ["quit"] or not command:
            break
        name = command[1]
        cpu, wall = time.process_time(), time.perf_counter()
        vectors = _encode(models[name], texts)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        np.save(out / f"{name}.npy", np.asarray(vectors, dtype=np.float32))
        protocol.write(json.dumps({"backend": name, "count": len(texts), "seconds": wall, "cpu_seconds": cpu}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
