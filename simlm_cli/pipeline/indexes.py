"""Opening an index to search it, shared by `simlm search` and `simlm mine --index`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from simlm_cli.console import info, warn
from simlm_cli.device import Precision, resolve_runtime
from simlm_cli.errors import InputError
from simlm_cli.index import DENSE_KIND, META_FILE, read_meta
from simlm_cli.index.dense import DenseIndex
from simlm_cli.io.qrels import QrelsFormat, read_qrels
from simlm_cli.models.settings import EncoderSettings, validate_settings


def is_dense(index: str | Path) -> bool:
    """A `simlm index` directory of the dense kind (else BM25)."""
    return (Path(index) / META_FILE).is_file() and read_meta(index)["kind"] == DENSE_KIND


def query_encoder(
    index: DenseIndex, model: str | None, device: str, precision: Precision, batch_size: int | None
) -> Any:
    """The encoder the index was built with (its recorded settings; `model` overrides the model only), at the
    precision asked for: an index of int8 passage vectors does not make the queries int8."""
    from simlm_cli.models.encoder import Encoder  # torch and transformers: loaded only when a dense index is searched

    settings = EncoderSettings.from_json(index.meta.get("encoder"), f"{index.path / META_FILE}: field 'encoder'")
    if model:
        settings = replace(settings, model=model, source="--model")
    validate_settings(settings)
    runtime = resolve_runtime(device, precision)
    built = index.meta.get("precision") or "unrecorded"
    info(f"encoding queries with {settings.model}; {runtime.describe()} (the index's passages: {built})")
    return Encoder(settings, runtime, batch_size=batch_size)


def check_qrels_documents(
    qrels_path: str | None,
    qrels_format: QrelsFormat,
    index: str,
    contains: Callable[[str], bool],
    partial_index: bool = False,
) -> None:
    """Judged documents missing from the index: a warning with a count, an error if none is there at all
    (unless the index was built from a `--dry-run` encode, which holds a few passages by design)."""
    if not qrels_path:
        return
    qrels = read_qrels(qrels_path, qrels_format)
    judged = {d for docs in qrels.judgments.values() for d in docs}
    missing = sorted((line, d) for (_, d), line in qrels.line_of.items() if not contains(d))
    missing_docs = {d for _, d in missing}
    if not missing:
        return
    if len(missing_docs) == len(judged) and not partial_index:
        raise InputError(qrels_path, f"no judged document is in the index {index} (wrong corpus?)")
    line, docid = missing[0]
    warn(
        f"{len(missing_docs)} of {len(judged)} judged documents are not in the index (first: {docid!r}, "
        f"{qrels_path}:{line}); they cannot be retrieved"
    )
