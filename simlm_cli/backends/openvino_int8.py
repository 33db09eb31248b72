"""`--precision int8` on the CPU: the model's MatMuls as int8 in OpenVINO, activation ranges calibrated by NNCF.

The OpenVINO backend (`simlm_cli/backends/openvino.py`) converts the HF model (eager attention), checks the float
graph against PyTorch and caches the result; this module is the int8 part of it: NNCF's post-training quantisation
(model type "transformer": SmoothQuant, per-channel int8 weights, int8 activations with ranges measured on simlm's
own calibration texts, fast bias correction) makes the checked graph's MatMuls int8. Embeddings, LayerNorm, softmax
and everything after the model (pooling, normalisation) stay in float32: the graph is compiled with an f32
inference precision, so CPUs with native bf16 do not silently run the rest in bf16.

Calibration uses `simlm_cli/data/int8/calibration.jsonl` (queries and passages written for simlm across many
domains, none from an evaluation set), so the quantised model is the same whichever corpus it then encodes, and
`search --precision int8` encodes queries with the very model that encoded the index's passages. The cache key
covers the calibration texts and NNCF's version too (`$SIMLM_CACHE_DIR/int8/<digest>/`, recorded in int8.json).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from simlm_cli.backends import openvino

CALIBRATION_FILE = Path(__file__).resolve().parents[1] / "data" / "int8" / "calibration.jsonl"


@dataclass(frozen=True)
class Int8Settings(openvino.ExportSettings):
    """What the cached int8 model depends on besides the weights and the calibration texts; changing any of it
    gives a new cache entry.

    Measured with benchmarks/int8_variants.py (MiniLM-L6, first 400 SciFact passages, batch 16, 2 threads, AMD
    EPYC Zen 4 with AVX512-VNNI and AVX512-BF16): calibrated on calibration.jsonl, 78.7 passages/s against
    OpenVINO's own unquantised default's 53.7, cosine to PyTorch fp32 mean 0.9966 (min 0.9933); calibrated on 64
    other SciFact passages instead, 77.1 and 0.9973: the domain-neutral texts cost 0.0007 of cosine and tie simlm's
    int8 to no corpus. Compiling the rest in bf16 (OpenVINO's default on this CPU) was no faster (77.4) for no
    better cosine (0.9966), so the float parts stay f32. NNCF int8 weights with dynamic activations: 49.7.
    """

    model_type: str = "transformer"
    preset: str = "mixed"  # symmetric int8 weights, asymmetric activations: NNCF's choice for transformers
    calibration_batch: int = 8
    float_layers: tuple[str, ...] = ()  # name patterns of layers left in float
    format_version: int = 2
    calibration: Path = field(default=CALIBRATION_FILE, compare=False)  # its content is in the key, not its path

    kind: ClassVar[str] = "int8"
    flag: ClassVar[str] = "--precision int8"

    @classmethod
    def for_head(cls, head: str) -> Int8Settings:
        """A re-ranker's pooler and one-logit classifier stay in float: per-tensor int8 on that last projection
        cost most of the error (MiniLM with a fresh head on 200 SciFact pairs: logit correlation to fp32 0.9961
        quantised, 0.9970 with these two in float; on a random tiny BERT 0.10 against 0.994). They are two small
        layers, so the speed is the same."""
        return cls(head=head, float_layers=(".*pooler.*", ".*classifier.*") if head == "classifier" else ())

    def key_fields(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if name != "calibration"}

    def key_files(self) -> list[Path]:
        return [self.calibration]

    def key_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"nncf": version("nncf")}  # not imported: it takes seconds, and a cache hit needs only OpenVINO

    def finish(self, model: Any, graph: Any, names: list[str], model_name: str) -> tuple[Any, dict[str, Any]]:
        """The checked float graph quantised on the calibration texts."""
        from simlm_cli.models.loading import load_tokenizer

        tokenizer = load_tokenizer(str(model.name_or_path))
        with _quiet_openvino() as nncf:
            batches = calibration_batches(tokenizer, self.head, names, self.calibration_batch, self.calibration)
            return _quantize(graph, batches, self, nncf), {"calibration_batches": len(batches)}


@contextlib.contextmanager
def _quiet_openvino() -> Iterator[Any]:
    """`openvino.quiet()` for NNCF too: it sends usage telemetry unless the user opted out (OpenVINO's absent
    `openvino_telemetry` makes it use its no-op stub) and logs to stdout, where `simlm encode` writes its
    embedding stream; its log handler and progress bars go to stderr."""
    with openvino.quiet():  # before nncf, which imports openvino_telemetry too
        import nncf
        from nncf.common.logging.logger import nncf_logger

        nncf.set_log_level(logging.WARNING)
        for handler in nncf_logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stdout__:
                handler.setStream(sys.stderr)
        yield nncf


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


# -- quantise ------------------------------------------------------------------------------------------------------
def _quantize(graph: Any, batches: list[dict[str, np.ndarray]], settings: Int8Settings, nncf: Any) -> Any:
    ignored = nncf.IgnoredScope(patterns=list(settings.float_layers), validate=False) if settings.float_layers else None
    return nncf.quantize(
        graph,
        nncf.Dataset(batches),
        preset=nncf.QuantizationPreset(settings.preset),
        model_type=nncf.ModelType(settings.model_type),
        subset_size=len(batches),
        ignored_scope=ignored,
    )
