"""`--precision int8` on the CPU: the model's MatMuls as int8 in OpenVINO, activation ranges calibrated by NNCF.

The HF model is converted once to an OpenVINO graph (eager attention), the float graph is checked against PyTorch,
and then NNCF's post-training quantisation (model type "transformer": SmoothQuant, per-channel int8 weights, int8
activations with ranges measured on simlm's own calibration texts, fast bias correction) makes its MatMuls int8.
Embeddings, LayerNorm, softmax and everything after the model (pooling, normalisation) stay in float32: the graph
is compiled with an f32 inference precision, so CPUs with native bf16 do not silently run the rest in bf16.

Calibration uses `simlm_cli/data/int8/calibration.jsonl` (queries and passages written for simlm across many
domains, none from an evaluation set), so the quantised model is the same whichever corpus it then encodes, and
`search --precision int8` encodes queries with the very model that encoded the index's passages.

The result is cached under `$SIMLM_CACHE_DIR/int8/<digest>/` (default `~/.cache/simlm`), keyed by the weights,
config, calibration texts, library versions and these settings, so the conversion runs once per model. The
entry's int8.json records the sha256 of each file written beside it, checked on every load: a changed, truncated or
missing file (or an unreadable int8.json) gets the entry rebuilt, never used.

`OvModel` is called like the HF model it replaces (keyword tensors in, an object with `last_hidden_state` or
`logits` out), so `biencoder.embed` (and its `pooling.pool`) and `cross_encoder.pair_logits` serve both paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import random
import shutil
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from simlm_cli.errors import InputError, SimlmError, first_line
from simlm_cli.io.json_input import read_json

CACHE_ENV = "SIMLM_CACHE_DIR"
MODEL_FILE = "model.xml"  # and model.bin beside it
INFO_FILE = "int8.json"
CALIBRATION_FILE = Path(__file__).resolve().parents[1] / "data" / "int8" / "calibration.jsonl"
FLOAT_TOLERANCE = 1e-3  # max |converted fp32 graph - PyTorch| on real tokens; conversion differences are ~1e-5
HEADS = {"encoder": "last_hidden_state", "classifier": "logits"}


@dataclass(frozen=True)
class ExportSettings:
    """What the cached model depends on besides the weights and the calibration texts; changing any of it gives a
    new cache entry.

    Measured with benchmarks/int8_variants.py (MiniLM-L6, first 400 SciFact passages, batch 16, 2 threads, AMD
    EPYC Zen 4 with AVX512-VNNI and AVX512-BF16): calibrated on calibration.jsonl, 78.7 passages/s against
    OpenVINO's own unquantised default's 53.7, cosine to PyTorch fp32 mean 0.9966 (min 0.9933); calibrated on 64
    other SciFact passages instead, 77.1 and 0.9973: the domain-neutral texts cost 0.0007 of cosine and tie simlm's
    int8 to no corpus. Compiling the rest in bf16 (OpenVINO's default on this CPU) was no faster (77.4) for no
    better cosine (0.9966), so the float parts stay f32. NNCF int8 weights with dynamic activations: 49.7.
    """

    head: str  # "encoder" (last_hidden_state) or "classifier" (logits)
    model_type: str = "transformer"
    preset: str = "mixed"  # symmetric int8 weights, asymmetric activations: NNCF's choice for transformers
    calibration_batch: int = 8
    inference_precision: str = "f32"
    float_layers: tuple[str, ...] = ()  # name patterns of layers left in float
    format_version: int = 2

    @classmethod
    def for_head(cls, head: str) -> ExportSettings:
        """A re-ranker's pooler and one-logit classifier stay in float: per-tensor int8 on that last projection
        cost most of the error (MiniLM with a fresh head on 200 SciFact pairs: logit correlation to fp32 0.9961
        quantised, 0.9970 with these two in float; on a random tiny BERT 0.10 against 0.994). They are two small
        layers, so the speed is the same."""
        return cls(head=head, float_layers=(".*pooler.*", ".*classifier.*") if head == "classifier" else ())


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "simlm")


@contextlib.contextmanager
def _quiet_openvino() -> Any:
    """OpenVINO's converter and NNCF send usage telemetry unless the user opted out, and NNCF logs to stdout, where
    `simlm encode` writes its embedding stream. An absent `openvino_telemetry` makes both use their no-op stubs;
    NNCF's log handler and progress bars go to stderr."""
    _openvino()  # before nncf, which imports openvino_telemetry too
    import logging

    import nncf
    from nncf.common.logging.logger import nncf_logger

    nncf.set_log_level(logging.WARNING)
    for handler in nncf_logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stdout__:
            handler.setStream(sys.stderr)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        # the tracer's warnings (about the mask's Python-side shape checks, which hold for every input simlm
        # feeds) are not the user's business; the float check below is
        warnings.simplefilter("ignore")
        yield nncf


def _openvino() -> Any:
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


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


def cache_key(model_dir: Path, settings: ExportSettings, calibration: Path = CALIBRATION_FILE) -> str:
    """A digest of the weights, the config, the tokenizer, the calibration texts and every library whose output
    the cached model depends on."""
    from importlib.metadata import version

    import torch
    import transformers

    digest = hashlib.sha256()
    versions = {
        "openvino": _openvino().__version__,
        "nncf": version("nncf"),  # not imported: it takes seconds, and a cache hit needs only OpenVINO
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    digest.update(json.dumps({"settings": asdict(settings), "versions": versions}, sort_keys=True).encode())
    required = sorted(model_dir.glob("*.safetensors")) + [model_dir / "config.json"]
    tokenizer_files = [p for p in sorted(model_dir.glob("*")) if p.name.startswith(("tokenizer", "vocab", "special"))]
    for path in [*required, *tokenizer_files, calibration]:
        if not path.is_file():
            raise SimlmError(f"{path}: missing; --precision int8 needs the model's config and safetensors weights")
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()[:32]


# -- calibration texts ----------------------------------------------------------------------------------------------
def calibration_texts(path: Path = CALIBRATION_FILE) -> tuple[list[str], list[str]]:
    """(queries, passages) of the calibration file."""
    texts: dict[str, list[str]] = {"query": [], "passage": []}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts[row["kind"]].append(row["text"])
    return texts["query"], texts["passage"]


def calibration_batches(
    tokenizer: Any, head: str, names: list[str], batch: int, path: Path = CALIBRATION_FILE
) -> list[dict[str, np.ndarray]]:
    """The calibration texts as padded int64 batches: queries and passages mixed (an encoder sees both), or each
    query paired with a passage (a re-ranker sees pairs). Shuffled with a fixed seed, so the model is reproducible."""
    queries, passages = calibration_texts(path)
    if head == "encoder":
        items: list[Any] = queries + passages
    else:
        shuffled = passages[:]
        random.Random(1).shuffle(shuffled)
        items = list(zip(queries, shuffled))
    random.Random(0).shuffle(items)
    out = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        args = (chunk,) if head == "encoder" else ([q for q, _ in chunk], [p for _, p in chunk])
        encoded = tokenizer(*args, truncation=True, max_length=256, padding=True, return_tensors="np")
        mask = encoded["attention_mask"]
        out.append({name: np.asarray(encoded.get(name, np.zeros_like(mask)), dtype=np.int64) for name in names})
    return out


# -- convert, check, quantise -------------------------------------------------------------------------------------
def _exportable(model: Any, head: str) -> Any:
    """The HF model as a function of named tensors returning one tensor: what the converter traces (the inputs
    keep their names, so the quantised model is fed by name)."""
    import torch

    output = HEADS[head]

    class Exportable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
        ) -> torch.Tensor:
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            return getattr(self.model(**inputs), output)

    return Exportable().eval()


def _input_names(model: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")
    return names


def _sample_inputs(config: Any, names: list[str], lengths: tuple[int, ...] = (13, 7, 3)) -> dict[str, np.ndarray]:
    """A padded batch of random token ids with rows of different lengths: what the float graph is checked on."""
    rng = np.random.default_rng(0)
    width = max(lengths)
    batch = {
        "input_ids": rng.integers(1000 if config.vocab_size > 2000 else 1, config.vocab_size, (len(lengths), width)),
        "attention_mask": (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int64),
    }
    if "token_type_ids" in names:
        batch["token_type_ids"] = np.zeros((len(lengths), width), dtype=np.int64)
    return {name: batch[name].astype(np.int64) for name in names}


def _convert(model: Any, settings: ExportSettings, names: list[str]) -> Any:
    import torch

    openvino = _openvino()
    sample = _sample_inputs(model.config, names)
    with torch.inference_mode():
        return openvino.convert_model(
            _exportable(model, settings.head),
            example_input={name: torch.from_numpy(sample[name]) for name in names},
            input=[(name, [-1, -1], openvino.Type.i64) for name in names],
        )


def _compiled(graph: Any, precision: str) -> Any:
    import torch

    config = {
        "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": precision,
    }
    return _openvino().Core().compile_model(graph, "CPU", config)


def _check_float(model: Any, graph: Any, settings: ExportSettings, names: list[str], model_name: str) -> float:
    """Max |converted float graph - PyTorch| on real (unpadded) positions; refuses a graph the conversion changed."""
    import torch

    sample = _sample_inputs(model.config, names, lengths=(21, 9, 2, 5))  # not the conversion's shape: axes are dynamic
    with torch.inference_mode():
        expected = getattr(model(**{k: torch.from_numpy(v) for k, v in sample.items()}), HEADS[settings.head]).numpy()
    got = _compiled(graph, "f32").create_infer_request().infer(sample)[0]  # the conversion's error alone
    if settings.head == "encoder":
        mask = sample["attention_mask"].astype(bool)
        expected, got = expected[mask], got[mask]
    diff = float(np.abs(expected - got).max())
    if not diff <= FLOAT_TOLERANCE:
        raise SimlmError(
            f"--precision int8: the OpenVINO graph of {model_name} differs from PyTorch by {diff:.2e} "
            f"(> {FLOAT_TOLERANCE}); this model's architecture is not supported for int8"
        )
    return diff


def _quantize(graph: Any, batches: list[dict[str, np.ndarray]], settings: ExportSettings, nncf: Any) -> Any:
    ignored = nncf.IgnoredScope(patterns=list(settings.float_layers), validate=False) if settings.float_layers else None
    return nncf.quantize(
        graph,
        nncf.Dataset(batches),
        preset=nncf.QuantizationPreset(settings.preset),
        model_type=nncf.ModelType(settings.model_type),
        subset_size=len(batches),
        ignored_scope=ignored,
    )


def build_int8(
    model: Any,
    tokenizer: Any,
    settings: ExportSettings,
    directory: Path,
    model_name: str,
    calibration: Path = CALIBRATION_FILE,
) -> dict:
    """Convert, check and quantise `model` (an HF module on the CPU, eager attention) into `directory`."""
    try:
        with _quiet_openvino() as nncf:
            names = _input_names(model)
            graph = _convert(model, settings, names)
            diff = _check_float(model, graph, settings, names, model_name)
            batches = calibration_batches(tokenizer, settings.head, names, settings.calibration_batch, calibration)
            quantised = _quantize(graph, batches, settings, nncf)
            _openvino().save_model(quantised, str(directory / MODEL_FILE), compress_to_fp16=False)
    except SimlmError:
        raise
    except Exception as err:  # converter/quantiser failures on an unsupported architecture
        raise SimlmError(f"--precision int8: cannot convert {model_name}: {first_line(err)}") from None
    return {
        "inputs": names,
        "output": HEADS[settings.head],
        "float_max_abs_diff": diff,
        "calibration_batches": len(batches),
        **asdict(settings),
    }


# -- the cache entry: every file's digest recorded, checked on each load ---------------------------------------------
def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _damage(entry: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the entry's record, None) when every file it lists is there with the digest recorded at build time; else
    (None, what is wrong). A flipped byte, a truncated model.xml or an emptied int8.json is never loaded."""
    try:
        info = read_json(entry / INFO_FILE)
    except FileNotFoundError:
        return None, f"no {INFO_FILE}"
    except (OSError, ValueError, InputError) as err:  # InputError: nested too deep
        return None, f"{INFO_FILE} unreadable ({type(err).__name__})"
    files = info.get("files") if isinstance(info, dict) else None
    if not isinstance(files, dict) or MODEL_FILE not in files or not all(isinstance(d, str) for d in files.values()):
        return None, f"{INFO_FILE} records no file digests"
    for name, expected in files.items():
        path = entry / name
        if Path(name).name != name or not path.is_file():
            return None, f"{name} missing"
        if file_digest(path) != expected:
            return None, f"{name} does not match its recorded sha256"
    return info, None


def _discard(entry: Path) -> None:
    """Move a damaged entry out of the way (one rename, so no reader sees it half-removed), then delete it."""
    aside = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".damaged", dir=entry.parent))
    os.replace(entry, aside / "entry")
    shutil.rmtree(aside, ignore_errors=True)


def int8_model_file(model: str, model_dir: Path, head: str, load: Any, log: Any = None) -> tuple[Path, dict[str, Any]]:
    """The cached int8 OpenVINO model of `model` (its files in `model_dir`; built on first use) and what was
    recorded about it. `load(model_dir)` returns the HF module (eager attention) and is only called on a miss.
    An entry whose files do not match their recorded digests is rebuilt, never used."""
    settings = ExportSettings.for_head(head)
    final = cache_root() / "int8" / cache_key(model_dir, settings)
    if final.exists():
        info, damage = _damage(final)
        if info is not None:
            return final / MODEL_FILE, info
        try:
            _discard(final)
        except OSError as err:
            raise SimlmError(
                f"{final}: damaged int8 cache entry ({damage}) and it cannot be removed ({err.strerror}); remove it "
                f"or set {CACHE_ENV}"
            ) from None
        from simlm_cli.console import warn

        warn(f"--precision int8: the cached model in {final} is damaged ({damage}); rebuilding it")
    elif log is not None:
        log(f"--precision int8: quantising {model} with OpenVINO/NNCF (once; cached in {final})")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as err:
        raise SimlmError(f"{final.parent}: cannot write the int8 cache ({err.strerror}); set {CACHE_ENV}") from None
    try:
        from simlm_cli.models.loading import load_tokenizer

        info = build_int8(load(model_dir), load_tokenizer(str(model_dir)), settings, tmp, str(model))
        info["model"] = str(model)
        info["files"] = {path.name: file_digest(path) for path in sorted(tmp.iterdir()) if path.is_file()}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process published the same entry first: theirs is identical
            if _damage(final)[0] is None:
                raise SimlmError(f"{final}: an incomplete int8 cache entry is in the way; remove it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / MODEL_FILE, info


# -- inference ----------------------------------------------------------------------------------------------------
class OvModel:
    """An int8 OpenVINO model called like the HF model it was made from: `model(**tensors).last_hidden_state` (or
    `.logits`) as float32 torch tensors on the CPU."""

    def __init__(self, path: Path, info: dict[str, Any], config: Any):
        graph = _openvino().Core().read_model(str(path))
        self.request = _compiled(graph, info["inference_precision"]).create_infer_request()  # as it was built
        self.config = config
        self.output = info["output"]
        self.inputs = list(info["inputs"])

    def __call__(self, **tensors: Any) -> SimpleNamespace:
        import torch

        mask = tensors["attention_mask"]
        feeds = {}
        for name in self.inputs:
            value = tensors.get(name)
            # a model with token types fed by a tokenizer without them: type 0 everywhere, as HF defaults
            feeds[name] = np.zeros(tuple(mask.shape), np.int64) if value is None else value.cpu().numpy()
        result = self.request.infer({k: v.astype(np.int64, copy=False) for k, v in feeds.items()})[0]
        return SimpleNamespace(**{self.output: torch.from_numpy(np.array(result, dtype=np.float32))})


def load_int8(model: str, head: str, load: Any, log: Any = None) -> OvModel:
    """The int8 OpenVINO model of `model` (path or hub name), converting and caching it on first use."""
    from transformers import AutoConfig

    model_dir = model_directory(model)  # a hub name is looked up once, for the cache key and the config alike
    path, info = int8_model_file(model, model_dir, head, load, log)
    return OvModel(path, info, AutoConfig.from_pretrained(model_dir))
