"""simlm's `--precision int8` variants against PyTorch fp32 (the baseline) and OpenVINO's own float compile.

What `simlm_cli/backends/openvino_int8.py` chose, and what it was chosen over, built from the same model into a temporary
directory (not the cache) and run through simlm's own `Encoder` (tokenising, batching, pooling as `simlm encode`):

- `ov float`: the converted graph, not quantised, compiled with OpenVINO's default precision (bf16 on CPUs with
  AVX512-BF16/AMX): what sentence-transformers' `backend="openvino"` runs;
- `int8 simlm`: simlm's choice, NNCF static int8 calibrated on `simlm_cli/data/int8/calibration.jsonl`, float parts
  in f32;
- `int8 corpus-calibrated`: the same, calibrated on `--calibration-passages` passages of `--corpus` taken after the
  timed ones instead of simlm's texts (what tying the model to a corpus would buy);
- `int8 bf16 rest`: simlm's choice with the float parts left to OpenVINO's default precision;
- `int8 weights only`: NNCF int8 weights with float activations quantised on the fly by the CPU plugin.

Every encoder is warmed up, then timed in alternation (`--repeats`, best kept) at each `--batch-sizes`; every row
prints its cosine to PyTorch fp32, so a speed-up cannot hide a different result. CPU seconds beside wall time
because the machine may be shared.

python benchmarks/int8_variants.py [--passages 400] [--threads 2] [--batch-sizes 16,32] [--model DIR_OR_NAME]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from simlm_cli.backends import openvino
from simlm_cli.backends import openvino_int8 as int8
from simlm_cli.device import Precision, Runtime
from simlm_cli.environment import cpu_info
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.loading import load_pretrained
from simlm_cli.models.settings import resolve_model_path, resolve_settings

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "simlm_cli" / "data" / "scifact" / "corpus.jsonl"
SIMLM = int8.Int8Settings.for_head("encoder")


class Compiled(openvino.OvModel):
    """An OpenVINO graph compiled with `config` on top of simlm's thread setting, called like `OvModel`: for the
    rows simlm does not build itself (the unquantised graph; weights-only int8)."""

    def __init__(self, graph, model_config, config: dict[str, str]) -> None:
        threads = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(torch.get_num_threads())}
        core = openvino.openvino_module().Core()
        self.request = core.compile_model(graph, "CPU", {**threads, **config}).create_infer_request()
        self.config, self.output = model_config, "last_hidden_state"
        self.inputs = [next(iter(port.get_names())) for port in graph.inputs]


def weights_only(graph):
    """NNCF int8 weights; the CPU plugin quantises the float activations on the fly (groups of 32)."""
    with int8._quiet_openvino() as nncf:
        return nncf.compress_weights(graph, mode=nncf.CompressWeightsMode.INT8_SYM)


def build_variants(settings, eager, corpus: str, offset: int, count: int, tmp: Path) -> dict[str, BiEncoder]:
    passages = itertools.islice(iter_corpus(corpus), offset, offset + count)
    corpus_texts = tmp / "corpus-calibration.jsonl"
    corpus_texts.write_text("".join(json.dumps({"kind": "passage", "text": p.joined()}) + "\n" for p in passages))
    encoders: dict[str, BiEncoder] = {}

    def encoder_over(model) -> BiEncoder:
        encoder = BiEncoder.load(settings, Runtime("cpu", Precision.fp32))
        encoder.encoder = model
        return encoder

    with openvino.quiet():
        graph = openvino.convert(eager, SIMLM.head, openvino.input_names(eager))
    encoders["ov float"] = encoder_over(Compiled(graph, eager.config, {}))
    plans = {
        "int8 simlm": SIMLM,
        "int8 corpus-calibrated": replace(SIMLM, calibration=corpus_texts),
        "int8 bf16 rest": replace(SIMLM, inference_precision="bf16"),
    }
    for name, export in plans.items():
        directory = tmp / name.replace(" ", "_")
        directory.mkdir()
        info = openvino.build(eager, export, directory, name)
        encoders[name] = encoder_over(openvino.OvModel(directory / openvino.MODEL_FILE, info, eager.config))
    dynamic = {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"}
    compressed = weights_only(graph.clone())
    encoders["int8 weights only"] = encoder_over(Compiled(compressed, eager.config, dynamic))
    return encoders


def timed(encoder: BiEncoder, tokens: dict) -> tuple[float, float, np.ndarray]:
    """(wall seconds, CPU seconds, vectors) of one pass."""
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = encoder.encode_tokens(tokens)
    return time.perf_counter() - wall, time.process_time() - cpu, vectors


def report(encoders: dict[str, BiEncoder], tokens: dict, batch_sizes: list[int], repeats: int, count: int) -> None:
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
                f"  {name:24s} {rate:7.1f} p/s  cpu {cpu:6.2f} s  x{rate / base:4.2f}  "
                f"cosine mean {cosine.mean():.4f} min {cosine.min():.4f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="16,32")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default=None)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--calibration-passages", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    settings = resolve_settings(args.model)
    model_dir = resolve_model_path(settings.model)
    passages = list(itertools.islice(iter_corpus(args.corpus), args.passages))
    cpu = cpu_info()
    print(f"CPU: {cpu['model']}; flags: {' '.join(f for f, has in cpu['flags'].items() if has)}")
    print(f"{args.threads} threads; {len(passages)} passages of {args.corpus}; model {model_dir}")

    fp32 = BiEncoder.load(settings, Runtime("cpu", Precision.fp32))
    tokens = fp32.tokenize_passages(passages)
    eager = load_pretrained(str(model_dir), attn_implementation="eager").eval()
    with tempfile.TemporaryDirectory() as tmp:
        variants = build_variants(settings, eager, args.corpus, args.passages, args.calibration_passages, Path(tmp))
        report({"torch fp32": fp32, **variants}, tokens, [int(b) for b in args.batch_sizes.split(",")],
               args.repeats, len(passages))  # fmt: skip


if __name__ == "__main__":
    main()
