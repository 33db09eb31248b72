"""`--precision int8` on the CPU: the model's Linear/MatMul layers as int8 in ONNX Runtime.

The HF model is exported once to ONNX (the legacy TorchScript exporter, eager attention), its attention,
SkipLayerNorm and BiasGelu fused by `onnxruntime.transformers.optimizer`, the fused float graph checked against
PyTorch, and then its MatMuls quantised dynamically (int8 weights per output channel, activations quantised per
batch at run time). Embeddings, LayerNorm, softmax and everything after the model (pooling, normalisation) stay in
float. The result is cached under `$SIMLM_CACHE_DIR/int8/<digest>/` (default `~/.cache/simlm`), keyed by the
weights, config, library versions and these settings, so the export runs once per model.

`OrtModel` is called like the HF model it replaces (keyword tensors in, an object with `last_hidden_state` or
`logits` out), so `biencoder.embed` (and its `pooling.pool`) and `cross_encoder.pair_logits` serve both paths.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from simlm_cli.errors import SimlmError, first_line

CACHE_ENV = "SIMLM_CACHE_DIR"
MODEL_FILE = "model.onnx"
INFO_FILE = "int8.json"
FUSED_TOLERANCE = 1e-3  # max |fused fp32 ONNX - PyTorch| on real tokens; fusion differences are ~1e-5
HEADS = {"encoder": "last_hidden_state", "classifier": "logits"}


@dataclass(frozen=True)
class ExportSettings:
    """What the cached file depends on besides the weights; changing any of it gives a new cache entry.

    Measured with benchmarks/int8_variants.py (MiniLM-L6, 200 SciFact passages, 2 threads, AMD EPYC Zen 4 with
    AVX512-VNNI; CPU seconds at batch 32, fp32 PyTorch 21.2): MatMuls and the fused attention (QAttention) 9.2 s,
    cosine to fp32 mean 0.995 (min 0.992); MatMuls only 11.3 s (0.996); unfused, every MatMul 9.5 s (0.995).
    reduce_range (7-bit weights, for CPUs without VNNI) was no faster and a little less exact.
    """

    head: str  # "encoder" (last_hidden_state) or "classifier" (logits)
    opset: int = 17
    fuse: bool = True
    op_types: tuple[str, ...] = ("MatMul", "Attention")
    per_channel: bool = True
    reduce_range: bool = False
    format_version: int = 1


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "simlm")


# -- the model's files and the cache key ------------------------------------------------------------------------
def model_directory(model: str) -> Path:
    """The model's files on disk: a local directory as it is; a hub name through the hub cache (downloaded once,
    as `from_pretrained` would)."""
    if Path(model).is_dir():
        return Path(model)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as err:  # the hub client raises many kinds (offline, not found, gated)
        raise SimlmError(f"--precision int8: cannot get the files of {model!r}: {first_line(err)}") from None


def cache_key(model_dir: Path, settings: ExportSettings) -> str:
    """A digest of the weights, the config and every library whose output the cached file depends on."""
    import onnx
    import onnxruntime
    import torch
    import transformers

    digest = hashlib.sha256()
    versions = {
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    digest.update(json.dumps({"settings": asdict(settings), "versions": versions}, sort_keys=True).encode())
    files = sorted(model_dir.glob("*.safetensors")) + [model_dir / "config.json"]
    for path in files:
        if not path.is_file():
            raise SimlmError(f"{path}: missing; --precision int8 needs the model's config and safetensors weights")
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()[:32]


# -- export, fuse, check, quantise ------------------------------------------------------------------------------
def _exportable(model: Any, head: str, names: list[str]) -> Any:
    """The HF model as a function of positional tensors returning one tensor: what the exporter traces."""
    import torch

    output = HEADS[head]

    class Exportable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return getattr(self.model(**dict(zip(names, tensors))), output)

    return Exportable().eval()


def _input_names(model: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")
    return names


def _sample_inputs(config: Any, names: list[str], lengths: tuple[int, ...] = (13, 7, 3)) -> dict[str, np.ndarray]:
    """A padded batch of random token ids with rows of different lengths: what the fused graph is checked on."""
    rng = np.random.default_rng(0)
    width = max(lengths)
    batch = {
        "input_ids": rng.integers(1000 if config.vocab_size > 2000 else 1, config.vocab_size, (len(lengths), width)),
        "attention_mask": (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int64),
    }
    if "token_type_ids" in names:
        batch["token_type_ids"] = np.zeros((len(lengths), width), dtype=np.int64)
    return {name: batch[name].astype(np.int64) for name in names}


def _export(model: Any, settings: ExportSettings, path: Path) -> list[str]:
    import torch

    names = _input_names(model)
    sample = _sample_inputs(model.config, names)
    output = HEADS[settings.head]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch", 1: "sequence"} if settings.head == "encoder" else {0: "batch"}
    with torch.inference_mode(), warnings.catch_warnings():
        # the legacy exporter's deprecation notice and tracer warnings (about the mask's Python-side shape checks,
        # which hold for every input simlm feeds) are not the user's business; the fused check below is
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _exportable(model, settings.head, names),
            tuple(torch.from_numpy(sample[name]) for name in names),
            str(path),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=settings.opset,
            dynamo=False,
        )
    return names


def _fuse(model: Any, source: Path, target: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.config
    fused = optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=0,  # the Python fusions only; ORT's own graph optimisations run when the session loads
    )
    fused.save_model_to_file(str(target))


def _check_fused(model: Any, path: Path, settings: ExportSettings, names: list[str], model_name: str) -> float:
    """Max |fused ONNX - PyTorch| on real (unpadded) positions; refuses a graph the fusion changed."""
    import torch

    sample = _sample_inputs(model.config, names, lengths=(21, 9, 2, 5))  # not the export's shape: axes are dynamic
    with torch.inference_mode():
        expected = getattr(model(**{k: torch.from_numpy(v) for k, v in sample.items()}), HEADS[settings.head]).numpy()
    got = _session(path).run(None, sample)[0]
    if settings.head == "encoder":
        mask = sample["attention_mask"].astype(bool)
        expected, got = expected[mask], got[mask]
    diff = float(np.abs(expected - got).max())
    if not diff <= FUSED_TOLERANCE:
        raise SimlmError(
            f"--precision int8: the fused ONNX graph of {model_name} differs from PyTorch by {diff:.2e} "
            f"(> {FUSED_TOLERANCE}); this model's architecture is not supported for int8"
        )
    return diff


def _quantize(source: Path, target: Path, settings: ExportSettings) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # its advice to pre-process (shape inference) is for static quantisation: kept off the user's stderr
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(settings.op_types),
            # the fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference: their
            # outputs are float, which the quantiser must be told
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(logging.NOTSET)


def build_int8(model: Any, settings: ExportSettings, directory: Path, model_name: str) -> dict[str, Any]:
    """Export, fuse, check and quantise `model` (an HF module on the CPU, eager attention) into `directory`."""
    work = directory / "work"
    work.mkdir()
    try:
        names = _export(model, settings, work / "exported.onnx")
        source = work / "exported.onnx"
        if settings.fuse:
            _fuse(model, source, work / "fused.onnx")
            source = work / "fused.onnx"
        diff = _check_fused(model, source, settings, names, model_name)
        _quantize(source, directory / MODEL_FILE, settings)
    except SimlmError:
        raise
    except Exception as err:  # exporter/optimizer/quantizer failures on an unsupported architecture
        raise SimlmError(f"--precision int8: cannot convert {model_name}: {first_line(err)}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"inputs": names, "output": HEADS[settings.head], "fused_max_abs_diff": diff, **asdict(settings)}


def int8_model_file(model: str, model_dir: Path, head: str, load: Any, log: Any = None) -> tuple[Path, dict[str, Any]]:
    """The cached int8 ONNX file of `model` (its files in `model_dir`; built on first use) and what was recorded
    about it. `load(model_dir)` returns the HF module (eager attention) and is only called when the cache misses."""
    settings = ExportSettings(head=head)
    final = cache_root() / "int8" / cache_key(model_dir, settings)
    if (final / INFO_FILE).is_file():
        return final / MODEL_FILE, json.loads((final / INFO_FILE).read_text(encoding="utf-8"))
    if log is not None:
        log(f"--precision int8: converting {model} to int8 ONNX (once; cached in {final})")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as err:
        raise SimlmError(f"{final.parent}: cannot write the int8 cache ({err.strerror}); set {CACHE_ENV}") from None
    try:
        info = build_int8(load(model_dir), settings, tmp, str(model))
        info["model"] = str(model)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process published the same entry first: theirs is identical
            if not (final / INFO_FILE).is_file():
                raise SimlmError(f"{final}: an incomplete int8 cache entry is in the way; remove it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / MODEL_FILE, info


# -- inference ----------------------------------------------------------------------------------------------------
def _session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: 24.0 vs 20.2 passages per CPU second at batch 32 on a 2-core EPYC
    # shared with other work, and faster by the wall clock too (8.0 vs 6.5 passages/s there).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OrtModel:
    """An int8 ONNX model called like the HF model it was made from: `model(**tensors).last_hidden_state` (or
    `.logits`) as float32 torch tensors on the CPU."""

    def __init__(self, path: Path, info: dict[str, Any], config: Any):
        self.session = _session(path)
        self.config = config
        self.output = info["output"]
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, **tensors: Any) -> SimpleNamespace:
        import torch

        mask = tensors["attention_mask"]
        feeds = {}
        for name in self.inputs:
            value = tensors.get(name)
            # a model with token types fed by a tokenizer without them: type 0 everywhere, as HF defaults
            feeds[name] = np.zeros(tuple(mask.shape), np.int64) if value is None else value.cpu().numpy()
        (result,) = self.session.run([self.output], {k: v.astype(np.int64, copy=False) for k, v in feeds.items()})
        return SimpleNamespace(**{self.output: torch.from_numpy(result)})


def load_int8(model: str, head: str, load: Any, log: Any = None) -> OrtModel:
    """The int8 ONNX Runtime model of `model` (path or hub name), converting and caching it on first use."""
    from transformers import AutoConfig

    model_dir = model_directory(model)  # a hub name is looked up once, for the cache key and the config alike
    path, info = int8_model_file(model, model_dir, head, load, log)
    return OrtModel(path, info, AutoConfig.from_pretrained(model_dir))
