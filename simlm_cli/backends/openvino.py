"""The OpenVINO backend (CPU only): the Hugging Face model converted once to an OpenVINO graph, checked against
PyTorch, cached, and run by OpenVINO's CPU plugin at fp32 or bf16 (its inference precision hint), or as int8
(`simlm_cli/backends/openvino_int8.py` quantises the converted graph; everything else here is shared).

The conversion traces the model with eager attention. Before a graph is used it is checked against PyTorch fp32 on
a padded batch of random tokens: the f32 graph within FLOAT_TOLERANCE of PyTorch (the conversion's own error), and
for fp32/bf16 also the graph as it will run, at its inference precision, each token's vector at cosine >=
MIN_COSINE (0.9999 fp32, 0.999 bf16) to PyTorch fp32 (a re-ranker's logits within CLASSIFIER_TOLERANCE: at bf16 the
mean error, also allowed twice what PyTorch's own bf16 autocast gives on the same batch). A graph
that fails is refused with one line, never used or cached.

Each model is cached under `$SIMLM_CACHE_DIR/<kind>/<digest>/` (default `~/.cache/simlm`; kind "openvino" for the
float graphs, "int8" for the quantised ones), keyed by the weights, config, tokenizer, library versions and the
export settings, so the conversion runs once per model and precision. The entry's `<kind>.json` records the sha256
of each file written beside it, checked on every load: a changed, truncated or missing file (or an unreadable
record) gets the entry rebuilt, never used.

OpenVINO's converter sends usage telemetry unless the user opted out, and must print nothing on stdout, where
`simlm encode` writes its embedding stream: `quiet()` takes care of both.

`OvModel` is called like the HF model it replaces (keyword tensors in, an object with `last_hidden_state` or
`logits` out), so `biencoder.embed` (and its pooling) and `cross_encoder.pair_logits` serve it as they serve PyTorch.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from simlm_cli.backends import HEADS
from simlm_cli.device import Precision, Runtime, cpu_has_fast_bf16
from simlm_cli.errors import InputError, SimlmError, first_line
from simlm_cli.io.json_input import read_json

CACHE_ENV = "SIMLM_CACHE_DIR"
MODEL_FILE = "model.xml"  # and model.bin beside it
FLOAT_TOLERANCE = 1e-3  # max |converted f32 graph - PyTorch| on real tokens; conversion differences are ~1e-5
# The least cosine of any token's vector to PyTorch fp32, per inference precision, for a graph to be used.
MIN_COSINE = {"f32": 0.9999, "bf16": 0.999}
# A re-ranker's logit error relative to max(1, |logit|), on a check batch of 16 pairs: at f32 the largest; at bf16
# the mean. bf16 keeps 8 significant bits, and on the re-rankers recipes/scifact.sh trains (MiniLM, 2 epochs of
# `rerank train`) the largest error of 16 pairs was up to 6.5e-2 for PyTorch's own bf16 autocast and 5.9e-2 for
# OpenVINO bf16 (a fixed bar of 5e-2 on the largest stopped that recipe twice), while the means were 0.8-1.4e-2 and
# 0.8-1.2e-2: the mean measures how far the graph is, where the largest of a few pairs is noise. A bf16 graph is
# refused when its mean error exceeds both 5e-2 and twice PyTorch bf16's on the same batch: clearly worse than bf16.
CLASSIFIER_TOLERANCE = {"f32": 1e-3, "bf16": 5e-2}
LOGIT_ERROR_KIND = {"f32": "max", "bf16": "mean"}  # which logit error CLASSIFIER_TOLERANCE bounds, per precision
BF16_AGAINST_PYTORCH_BF16 = 2.0
PRECISION_HINTS = {Precision.fp32: "f32", Precision.bf16: "bf16"}


@dataclass(frozen=True)
class ExportSettings:
    """What a cached float graph depends on besides the weights; changing any of it gives a new cache entry."""

    head: str  # "encoder" (last_hidden_state) or "classifier" (logits)
    inference_precision: str = "f32"  # OpenVINO's INFERENCE_PRECISION_HINT when the graph is compiled
    format_version: int = 1

    kind: ClassVar[str] = "openvino"  # the cache's subdirectory and its record's name (<kind>.json)
    flag: ClassVar[str] = "--backend openvino"  # what the user asked for, in messages

    def key_fields(self) -> dict[str, Any]:
        """What goes into the cache key besides the model's files. bf16 runs natively on some CPUs and is
        emulated or refused on others, so a bf16 graph is checked (and cached) per kind of CPU."""
        fields = asdict(self)
        if self.inference_precision == "bf16":
            fields["cpu_bf16"] = cpu_has_fast_bf16()
        return fields

    def key_files(self) -> list[Path]:
        """Files besides the model's whose content the cached graph depends on."""
        return []

    def key_versions(self) -> dict[str, str]:
        """Libraries besides OpenVINO, torch and transformers whose output the cached graph depends on."""
        return {}

    def finish(self, model: Any, graph: Any, names: list[str], model_name: str) -> tuple[Any, dict[str, Any]]:
        """The graph to cache, from the checked f32 conversion, and what to record about it: a float graph is
        checked as it will run (at its inference precision) and kept as it is."""
        return graph, check_compiled(model, graph, self, names, model_name)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "simlm")


def openvino_module() -> Any:
    """OpenVINO, imported with its telemetry off: an absent `openvino_telemetry` makes it (and NNCF) use no-op
    stubs."""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


@contextlib.contextmanager
def quiet() -> Iterator[Any]:
    """OpenVINO with telemetry off, anything it prints sent to stderr, and the tracer's warnings (about the
    mask's Python-side shape checks, which hold for every input simlm feeds) silenced: the check against PyTorch
    is what tells whether the conversion is right."""
    openvino = openvino_module()
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield openvino


# -- the model's files and the cache key ------------------------------------------------------------------------
def model_directory(model: str, flag: str) -> Path:
    """The model's files on disk: a local directory as it is; a hub name through the hub cache (downloaded once,
    as `from_pretrained` would)."""
    if Path(model).is_dir():
        return Path(model)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as err:  # the hub client raises many kinds (offline, not found, gated)
        raise SimlmError(f"{flag}: cannot get the files of {model!r}: {first_line(err)}") from None


def cache_key(model_dir: Path, settings: ExportSettings) -> str:
    """A digest of the weights, the config, the tokenizer, the settings (and their own files) and every library
    whose output the cached model depends on."""
    import torch
    import transformers

    digest = hashlib.sha256()
    versions = {
        "openvino": openvino_module().__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **settings.key_versions(),
    }
    digest.update(json.dumps({"settings": settings.key_fields(), "versions": versions}, sort_keys=True).encode())
    required = sorted(model_dir.glob("*.safetensors")) + [model_dir / "config.json"]
    tokenizer_files = [p for p in sorted(model_dir.glob("*")) if p.name.startswith(("tokenizer", "vocab", "special"))]
    for path in [*required, *tokenizer_files, *settings.key_files()]:
        if not path.is_file():
            raise SimlmError(f"{path}: missing; {settings.flag} needs the model's config and safetensors weights")
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()[:32]


# -- convert and check --------------------------------------------------------------------------------------------
def _exportable(model: Any, head: str) -> Any:
    """The HF model as a function of named tensors returning one tensor: what the converter traces (the inputs
    keep their names, so the graph is fed by name)."""
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


def input_names(model: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")
    return names


def sample_inputs(config: Any, names: list[str], lengths: tuple[int, ...] = (13, 7, 3)) -> dict[str, np.ndarray]:
    """A padded batch of random token ids with rows of different lengths: what graphs are checked on."""
    rng = np.random.default_rng(0)
    width = max(lengths)
    batch = {
        "input_ids": rng.integers(1000 if config.vocab_size > 2000 else 1, config.vocab_size, (len(lengths), width)),
        "attention_mask": (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int64),
    }
    if "token_type_ids" in names:
        batch["token_type_ids"] = np.zeros((len(lengths), width), dtype=np.int64)
    return {name: batch[name].astype(np.int64) for name in names}


def convert(model: Any, head: str, names: list[str]) -> Any:
    import torch

    openvino = openvino_module()
    sample = sample_inputs(model.config, names)
    with torch.inference_mode():
        return openvino.convert_model(
            _exportable(model, head),
            example_input={name: torch.from_numpy(sample[name]) for name in names},
            input=[(name, [-1, -1], openvino.Type.i64) for name in names],
        )


def compiled(graph: Any, precision: str) -> Any:
    import torch

    config = {
        "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": precision,
    }
    return openvino_module().Core().compile_model(graph, "CPU", config)


# The check batch's rows: a shape that is not the conversion's (the axes are dynamic). A re-ranker gives one number
# per row, so its batch has 16 rows of 4-64 tokens.
CHECK_LENGTHS = {"encoder": (21, 9, 2, 5), "classifier": tuple(range(4, 68, 4))}


def _pytorch_output(model: Any, head: str, sample: dict[str, np.ndarray], bf16: bool = False) -> np.ndarray:
    import torch

    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        output = getattr(model(**{k: torch.from_numpy(v) for k, v in sample.items()}), HEADS[head])
    return output.float().numpy().astype(np.float64)


def check_sample(model: Any, head: str, names: list[str]) -> dict[str, np.ndarray]:
    """The batch a graph is checked on against PyTorch: one per head, built once per check and shared by its parts."""
    return sample_inputs(model.config, names, lengths=CHECK_LENGTHS[head])


def _against_pytorch(
    model: Any, graph: Any, head: str, sample: dict[str, np.ndarray], precision: str
) -> tuple[np.ndarray, ...]:
    """(PyTorch fp32's output, the graph's at `precision`) on the real (unpadded) positions of the check batch."""
    expected = _pytorch_output(model, head, sample)
    got = compiled(graph, precision).create_infer_request().infer(sample)[0]
    if head == "encoder":
        mask = sample["attention_mask"].astype(bool)
        expected, got = expected[mask], got[mask]
    return expected, np.asarray(got, dtype=np.float64)


def logit_error(expected: np.ndarray, got: np.ndarray, precision: str) -> float:
    """The logit error relative to max(1, |logit|): the largest at f32, the mean at bf16 (LOGIT_ERROR_KIND)."""
    errors = np.abs(expected - got) / np.maximum(np.abs(expected), 1.0)
    return float(getattr(errors, LOGIT_ERROR_KIND[precision])())


def classifier_bar(
    model: Any, sample: dict[str, np.ndarray], precision: str, expected: np.ndarray
) -> tuple[float, dict[str, float]]:
    """The logit error a re-ranker's graph may have at `precision`, and what it was derived from: the fixed
    tolerance, or at bf16 twice PyTorch's own bf16 autocast error on the check batch `sample` when that is larger.
    `expected`: PyTorch fp32's logits on that batch (`_against_pytorch`'s, not computed again)."""
    bar = CLASSIFIER_TOLERANCE[precision]
    if precision != "bf16":
        return bar, {}
    torch_bf16 = logit_error(expected, _pytorch_output(model, "classifier", sample, True), precision)
    return max(bar, BF16_AGAINST_PYTORCH_BF16 * torch_bf16), {"pytorch_bf16_mean_logit_error": torch_bf16}


def check_float(model: Any, graph: Any, settings: ExportSettings, names: list[str], model_name: str) -> float:
    """Max |converted f32 graph - PyTorch| on real positions; refuses a graph the conversion changed."""
    expected, got = _against_pytorch(model, graph, settings.head, check_sample(model, settings.head, names), "f32")
    diff = float(np.abs(expected - got).max())
    if not diff <= FLOAT_TOLERANCE:
        raise SimlmError(
            f"{settings.flag}: the OpenVINO graph of {model_name} differs from PyTorch by {diff:.2e} "
            f"(> {FLOAT_TOLERANCE}); this model's architecture is not supported by OpenVINO here"
        )
    return diff


def min_cosine(expected: np.ndarray, got: np.ndarray) -> float:
    """The least cosine of any row's vector to PyTorch's."""
    norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1)
    return float((np.sum(expected * got, axis=1) / np.maximum(norms, 1e-30)).min())


def check_compiled(
    model: Any, graph: Any, settings: ExportSettings, names: list[str], model_name: str
) -> dict[str, float]:
    """The graph as it will run (at its inference precision) against PyTorch fp32, refused below the bar: an
    encoder's token vectors at MIN_COSINE, a re-ranker's logits (one number per pair, where a cosine says nothing)
    within `classifier_bar` of max(1, |logit|). Returns the measure, to be recorded."""
    precision = settings.inference_precision
    sample = check_sample(model, settings.head, names)
    expected, got = _against_pytorch(model, graph, settings.head, sample, precision)
    if settings.head == "encoder":
        cosine = min_cosine(expected, got)
        if cosine >= MIN_COSINE[precision]:
            return {"min_cosine": cosine}
        problem = f"reaches cosine {cosine:.6f} to PyTorch fp32 (< {MIN_COSINE[precision]})"
    else:
        error = logit_error(expected, got, precision)
        bar, measured = classifier_bar(model, sample, precision, expected)
        kind = LOGIT_ERROR_KIND[precision]
        if error <= bar:
            return {f"{kind}_logit_error": error, **measured}
        against = f", twice PyTorch bf16's {measured['pytorch_bf16_mean_logit_error']:.2e}" if measured else ""
        problem = (
            f"logits differ from PyTorch fp32's by a {kind} of {error:.2e} of max(1, |logit|) (> {bar:.2e}{against})"
        )
    raise SimlmError(f"{settings.flag}: the OpenVINO {precision} graph of {model_name} {problem}; use --backend torch")


def build(model: Any, settings: ExportSettings, directory: Path, model_name: str) -> dict[str, Any]:
    """Convert `model` (an HF module on the CPU, eager attention), check it, finish it as `settings` say (keep it,
    or quantise it) and save it into `directory`; returns what to record about it."""
    try:
        with quiet() as openvino:
            names = input_names(model)
            graph = convert(model, settings.head, names)
            diff = check_float(model, graph, settings, names, model_name)
            graph, recorded = settings.finish(model, graph, names, model_name)
            openvino.save_model(graph, str(directory / MODEL_FILE), compress_to_fp16=False)
    except SimlmError:
        raise
    except Exception as err:  # converter/quantiser failures on an unsupported architecture
        raise SimlmError(f"{settings.flag}: cannot convert {model_name}: {first_line(err)}") from None
    return {
        "inputs": names,
        "output": HEADS[settings.head],
        "float_max_abs_diff": diff,
        **recorded,
        **settings.key_fields(),
    }


# -- the cache entry: every file's digest recorded, checked on each load ---------------------------------------------
def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def info_file(kind: str) -> str:
    return f"{kind}.json"


def damage(entry: Path, kind: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the entry's record, None) when every file it lists is there with the digest recorded at build time; else
    (None, what is wrong). A flipped byte, a truncated model.xml or an emptied record is never loaded."""
    record = info_file(kind)
    try:
        info = read_json(entry / record)
    except FileNotFoundError:
        return None, f"no {record}"
    except (OSError, ValueError, InputError) as err:  # InputError: nested too deep
        return None, f"{record} unreadable ({type(err).__name__})"
    files = info.get("files") if isinstance(info, dict) else None
    if not isinstance(files, dict) or MODEL_FILE not in files or not all(isinstance(d, str) for d in files.values()):
        return None, f"{record} records no file digests"
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


def _verified_entry(final: Path, settings: ExportSettings) -> dict[str, Any] | None:
    """The record of the cache entry `final` if it is there and intact; a damaged one is removed (and None)."""
    if not final.exists():
        return None
    info, problem = damage(final, settings.kind)
    if info is not None:
        return info
    try:
        _discard(final)
    except OSError as err:
        raise SimlmError(
            f"{final}: damaged {settings.kind} cache entry ({problem}) and it cannot be removed ({err.strerror}); "
            f"remove it or set {CACHE_ENV}"
        ) from None
    from simlm_cli.console import warn

    warn(f"{settings.flag}: the cached model in {final} is damaged ({problem}); rebuilding it")
    return None


def cached_model_file(
    model: str, model_dir: Path, settings: ExportSettings, load: Callable[..., Any], log: Any = None
) -> tuple[Path, dict[str, Any]]:
    """The cached OpenVINO model of `model` (its files in `model_dir`) made as `settings` say, built on first use,
    and what was recorded about it. `load(model_dir, attn_implementation="eager")` returns the HF module and is
    only called on a miss. An entry whose files do not match their recorded digests is rebuilt, never used."""
    final = cache_root() / settings.kind / cache_key(model_dir, settings)
    info = _verified_entry(final, settings)
    if info is not None:
        return final / MODEL_FILE, info
    if log is not None and not final.exists():
        log(f"{settings.flag}: converting {model} ({settings.inference_precision}; once, cached in {final})")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as err:
        raise SimlmError(f"{final.parent}: cannot write the model cache ({err.strerror}); set {CACHE_ENV}") from None
    try:
        hf_model = load(str(model_dir), attn_implementation="eager").eval()
        info = build(hf_model, settings, tmp, str(model))
        info["model"] = str(model)
        info["files"] = {path.name: file_digest(path) for path in sorted(tmp.iterdir()) if path.is_file()}
        (tmp / info_file(settings.kind)).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process published the same entry first: theirs is identical
            if damage(final, settings.kind)[0] is None:
                raise SimlmError(f"{final}: an incomplete cache entry is in the way; remove it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / MODEL_FILE, info


# -- inference ----------------------------------------------------------------------------------------------------
class OvModel:
    """An OpenVINO model called like the HF model it was made from: `model(**tensors).last_hidden_state` (or
    `.logits`) as float32 torch tensors on the CPU."""

    def __init__(self, path: Path, info: dict[str, Any], config: Any):
        graph = openvino_module().Core().read_model(str(path))
        self.request = compiled(graph, info["inference_precision"]).create_infer_request()  # as it was checked
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


def export_settings(head: str, precision: Precision) -> ExportSettings:
    """How a model is made for `precision`: a float graph compiled at its precision hint, or int8."""
    if precision is Precision.int8:
        from simlm_cli.backends.openvino_int8 import Int8Settings

        return Int8Settings.for_head(head)
    return ExportSettings(head=head, inference_precision=PRECISION_HINTS[precision])


def load(
    model: str, head: str, runtime: Runtime, load_torch: Callable[..., Any], log: Callable[[str], None] | None = None
) -> OvModel:
    """The OpenVINO model of `model` (path or hub name) at `runtime`'s precision, converted and cached on first
    use."""
    from transformers import AutoConfig

    settings = export_settings(head, runtime.precision)
    model_dir = model_directory(model, settings.flag)  # a hub name is looked up once, for the key and config alike
    path, info = cached_model_file(model, model_dir, settings, load_torch, log)
    return OvModel(path, info, AutoConfig.from_pretrained(model_dir))
