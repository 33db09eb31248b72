"""Indexes on disk: dense (faiss) and sparse (Pyserini/Lucene BM25), each a directory with `meta.json`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

from simlm_cli.errors import InputError
from simlm_cli.io.json_input import read_json

META_FILE = "meta.json"
DENSE_KIND = "simlm-dense-index"
BM25_KIND = "simlm-bm25-index"
# BM25's defaults, here (not in bm25.py, which brings Lucene) so that the commands' flags and the pipelines'
# configurations name the same values without loading Lucene: Anserini's, used for the BEIR reference figures.
DEFAULT_K1 = 0.9
DEFAULT_B = 0.4
DEFAULT_THREADS = 2  # Lucene's indexing and search threads


class IndexType(str, Enum):
    """A dense index's kind (`simlm index --type`); here, not in dense.py (numpy, faiss), for the flags."""

    flat = "flat"
    hnsw = "hnsw"
    ivfpq = "ivfpq"


class SearchBackend(str, Enum):
    """What searches a dense index: torch (exact, flat indexes only, on the query encoder's device) or faiss;
    auto is torch on CUDA for flat indexes (unless --gpu asks for faiss-gpu), faiss otherwise."""

    auto = "auto"
    torch = "torch"
    faiss = "faiss"


def read_meta(index_dir: str | Path) -> dict[str, Any]:
    """Read and check an index directory's metadata; a broken directory is a one-line error."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        raise InputError(index_dir, "no such index directory")
    meta_path = index_dir / META_FILE
    if not meta_path.is_file():
        raise InputError(meta_path, "missing: not a simlm index directory (build one with `simlm index`)")
    try:
        meta = read_json(meta_path)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(meta_path, f"corrupt index metadata ({err})") from None
    if not isinstance(meta, dict) or meta.get("kind") not in (DENSE_KIND, BM25_KIND):
        raise InputError(meta_path, f"field 'kind' must be {DENSE_KIND!r} or {BM25_KIND!r}")
    return meta


def is_index_dir(index_dir: str | Path) -> bool:
    """Whether `index_dir` holds a meta.json that simlm wrote (its `kind`), so `--output` may replace it."""
    try:
        meta = read_json(Path(index_dir) / META_FILE)
    except (OSError, ValueError, InputError):  # InputError: nested too deep
        return False
    return isinstance(meta, dict) and meta.get("kind") in (DENSE_KIND, BM25_KIND)


def write_meta(index_dir: Path, meta: dict[str, Any]) -> None:
    (index_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
