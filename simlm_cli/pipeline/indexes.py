"""Opening an index to search it, shared by `simlm search` and `simlm mine --index`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from simlm_cli.console import info, warn
from simlm_cli.device import Runtime
from simlm_cli.errors import InputError, SimlmError
from simlm_cli.index import DENSE_KIND, META_FILE, SearchBackend, read_meta
from simlm_cli.index.dense import DenseIndex, MergedDenseIndex, missing_shards
from simlm_cli.io.qrels import QrelsFormat, read_qrels
from simlm_cli.models.settings import EncoderSettings, validate_settings


def is_dense(index: str | Path) -> bool:
    """A `simlm index` directory of the dense kind (else BM25)."""
    return (Path(index) / META_FILE).is_file() and read_meta(index)["kind"] == DENSE_KIND


def is_dense_set(indexes: list[str]) -> bool:
    """Whether `--index` (given once or more) names dense indexes; several BM25 ones are refused."""
    dense = [is_dense(path) for path in indexes]
    if len(indexes) > 1 and not all(dense):
        bm25 = indexes[dense.index(False)]
        raise SimlmError(f"--index {bm25} is a BM25 index: several --index are merged only for dense indexes "
                         "(Lucene indexes are not); give one BM25 index")  # fmt: skip
    return dense[0]


def check_complete(indexes: list[str]) -> None:
    """Indexes built with `simlm index --partial` record which encode shards of which corpus they hold: the
    parts given together must hold every shard of each such set, each once."""
    sets: dict[tuple[str, int], dict[int, str]] = {}
    for path in indexes:
        for part in _part_of(path):
            held = sets.setdefault((part["corpus"], part["num_shards"]), {})
            for shard in part["shard_ids"]:
                if shard in held:
                    raise InputError(path, f"holds shard {shard} of {part['num_shards']} of {part['corpus']}, "
                                     f"as does {held[shard]}; give each part once")  # fmt: skip
                held[shard] = path
    for (corpus, num_shards), held in sets.items():
        names = missing_shards(num_shards, held)
        if names:
            raise InputError(next(iter(held.values())), f"is part of a set of {num_shards} shards of {corpus}; "
                             f"shard(s) {names} are in no --index given (give every part: --index A --index B ...)")  # fmt: skip


def _part_of(path: str) -> list[dict[str, Any]]:
    """meta.json's `part_of` (absent: a whole index), checked, so that an edited file fails in one line."""
    parts = read_meta(path).get("part_of", [])
    for part in parts if isinstance(parts, list) else [None]:
        n = part.get("num_shards") if isinstance(part, dict) else None
        ids = part.get("shard_ids") if isinstance(part, dict) else None
        if not (isinstance(n, int) and n > 0 and isinstance(part.get("corpus"), str) and isinstance(ids, list)
                and all(isinstance(i, int) and 0 <= i < n for i in ids)):  # fmt: skip
            message = f"expected a list of {{corpus, num_shards, shard_ids}} objects, got {parts!r}"
            raise InputError(Path(path) / META_FILE, message[:300], field="part_of")
    return parts


def open_dense(indexes: list[str], gpu: bool = False) -> DenseIndex | MergedDenseIndex:
    """One dense index, or several parts of one searched as one, after checking that no part is missing."""
    check_complete(indexes)
    parts = [DenseIndex(path, gpu=gpu) for path in indexes]
    return parts[0] if len(parts) == 1 else MergedDenseIndex(parts)


def choose_search_backend(
    index: DenseIndex | MergedDenseIndex, backend: SearchBackend, device: str, gpu: bool, shard_rows: int | None
) -> SearchBackend:
    """Set `index` up to be searched by `backend` on `device` (the query encoder's, resolved) and return which
    backend that is: auto is torch on CUDA for flat indexes, unless --gpu asks for faiss-gpu; faiss otherwise.
    Called before the query encoder is loaded, so that a refusal comes first and alone."""
    parts = getattr(index, "parts", [index])
    if backend is SearchBackend.auto:
        torch_fits = device.startswith("cuda") and not gpu and all(part.flat for part in parts)
        backend = SearchBackend.torch if torch_fits else SearchBackend.faiss
    if backend is SearchBackend.faiss:
        if shard_rows is not None:
            raise SimlmError("--search-shard-rows applies to --search-backend torch; faiss searches whole indexes")
        return backend
    if gpu:
        raise SimlmError("--search-backend torch and --gpu (faiss-gpu) exclude each other: give one of them")
    searches = [part.use_torch(device, shard_rows) for part in parts]
    each = f" (each of {len(parts)} parts)" if len(parts) > 1 else ""
    info(f"searching with {searches[0].describe()}{each}")
    return backend


def refuse_dense_search_options(index: str, backend: SearchBackend, shard_rows: int | None) -> None:
    """--search-backend torch and --search-shard-rows say how to search a dense index; a BM25 one ignores neither."""
    if backend is SearchBackend.torch or shard_rows is not None:
        flag = "--search-backend torch" if backend is SearchBackend.torch else "--search-shard-rows"
        raise SimlmError(f"{flag} applies to dense indexes; {index} is a BM25 index")


def query_encoder(
    index: DenseIndex | MergedDenseIndex, model: str | None, runtime: Runtime, batch_size: int | None
) -> Any:
    """The encoder the index was built with (its recorded settings; `model` overrides the model only), at the
    precision and on the backend asked for: an index of int8 passage vectors does not make the queries int8. Both
    are said, with a warning where the index recorded other ones (indexes from before the backend was recorded
    are compared on precision only)."""
    from simlm_cli.models.biencoder import (
        BiEncoder,  # torch and transformers: loaded only when a dense index is searched
    )

    settings = EncoderSettings.from_json(index.meta.get("encoder"), f"{index.path / META_FILE}: field 'encoder'")
    if model:
        settings = replace(settings, model=model, source="--model")
    validate_settings(settings)
    encoder = BiEncoder.load(settings, runtime, batch_size=batch_size)
    index.check_query_dim(encoder.dim)  # before any query is encoded
    recorded = {field: str(index.meta.get(field) or "") for field in ("precision", "backend")}
    built = ", ".join(value for value in recorded.values() if value) or "unrecorded"
    info(f"encoding queries with {settings.model}; {runtime.describe()} (the index's passages: {built})")
    asked = {"precision": runtime.precision.value, "backend": runtime.backend.value}
    # a value with "+" (shards encoded differently) has no one flag to match; the line above says it
    differ = [field for field, value in recorded.items() if value and "+" not in value and value != asked[field]]
    if differ:
        flags = " ".join(f"--{field} {recorded[field]}" for field in differ)
        warn(f"the queries are encoded at {runtime.describe()}, the index's passages at {built}: {flags} encodes "
             "them alike")  # fmt: skip
    return encoder


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
