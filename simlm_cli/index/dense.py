"""Dense indexes with faiss: exact inner product (the paper's search), HNSW and IVF-PQ.

Directory layout: `index.faiss` (the faiss index), `docids.txt` (row i's document id on line i+1) and
`meta.json` (kind, index type, count, dim, the encoder settings that made the vectors, search parameters).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.index import DENSE_KIND, META_FILE, IndexType, is_index_dir, read_meta, write_meta
from simlm_cli.index.torch_search import TorchFlatSearch
from simlm_cli.io.embeddings import EmbeddingReader, streams_record
from simlm_cli.io.files import atomic_directory
from simlm_cli.io.ranked_block import RankedBlock
from simlm_cli.options.index import BuildOptions

INDEX_FILE = "index.faiss"
DOCIDS_FILE = "docids.txt"
PQ_CENTROIDS = 256
TRAIN_POINTS_PER_CENTROID = 64
ADD_BLOCK = 65_536


class _VectorSpool:
    """Vectors appended to a temporary file beside `output`, read back as a read-only memory map. Its directory is
    named as every temporary simlm leaves when killed (`.NAME.*.tmp`, NAME the output's), so that one note covers
    them all and `simlm index DIR` passes it by."""

    def __init__(self, output: Path, dim: int):
        output.parent.mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix=f".{output.name}.", suffix=".vectors.tmp", dir=output.parent)
        self.path = Path(self._dir.name) / "vectors.f32"
        self._handle = open(self.path, "wb")  # noqa: SIM115 (closed by vectors() or __exit__)
        self.dim = dim
        self.count = 0

    def add(self, vectors: np.ndarray) -> None:
        self._handle.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        self.count += len(vectors)

    def vectors(self) -> np.ndarray:
        self._handle.close()
        return np.memmap(self.path, dtype="<f4", mode="r", shape=(self.count, self.dim))

    def __enter__(self) -> _VectorSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()
        self._dir.cleanup()


BLAS_THRESHOLD = 20  # faiss's long-standing value; see faiss_module()


def faiss_module() -> Any:
    """faiss, set up for simlm's searches.

    faiss 1.15 takes its BLAS path for exact search only from 128,000 (its new `distance_compute_blas_threshold`);
    below that it scans query by query. Measured on 2 cores, 200k x 384-d, top 1000: 16.4 ms per query in blocks
    of 256 queries, 1.8 ms with the BLAS path, which the classic threshold of 20 queries restores. SciFact's 300
    test queries, `simlm mine --index` (blocks of 256) and simlm search's blocks all fall below the new default.
    """
    import faiss

    if faiss.cvar.distance_compute_blas_threshold > BLAS_THRESHOLD:
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
    return faiss


def require_gpu() -> Any:
    """faiss with at least one GPU, or a clear error saying which part is missing."""
    faiss = faiss_module()
    if not hasattr(faiss, "StandardGpuResources"):
        raise SimlmError("--gpu: this faiss build has no GPU support (pip install 'simlm[gpu]', see README)")
    if faiss.get_num_gpus() < 1:
        raise SimlmError("--gpu: faiss has GPU support but sees no GPU")
    return faiss


def _pq_m(dim: int, asked: int) -> int:
    if asked:
        if dim % asked:
            raise SimlmError(f"--pq-m {asked} must divide the vector dimension {dim}")
        return asked
    for divisor in (4, 8, 2, 1):
        if dim % divisor == 0 and dim // divisor <= 96:
            return dim // divisor
    return dim


def missing_shards(num_shards: int, held: Iterable[int]) -> str:
    """The shard ids of a set of `num_shards` that `held` lacks, for an error message ("" when none is)."""
    missing = sorted(set(range(num_shards)) - set(held))
    return ", ".join(str(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")


def check_shards(readers: list[EmbeddingReader], partial: bool = False) -> list[dict[str, Any]]:
    """Streams that are shards of one corpus (`encode --num-shards N`) must all be there, each once: otherwise
    the index would silently hold part of the corpus. Whole streams (N = 1) stand alone. With `partial` (an
    index that is one part of a set) shards may be missing; what is there is returned, for meta.json's `part_of`."""
    shards: dict[tuple[str, int], dict[int, str]] = {}
    for reader in readers:
        h = reader.header
        if h.num_shards < 1 or not 0 <= h.shard_id < h.num_shards:
            raise InputError(reader.name, f"corrupt stream header: shard {h.shard_id} of {h.num_shards}")
        if h.num_shards == 1:
            continue  # a whole stream; two of one corpus are caught by their duplicate ids
        # By file name: ranks on other nodes may mount the corpus under another directory.
        seen = shards.setdefault((Path(h.corpus).name, h.num_shards), {})
        if h.shard_id in seen:
            raise InputError(
                reader.name, f"shard {h.shard_id} of {h.num_shards} of {h.corpus} is also in {seen[h.shard_id]}"
            )
        seen[h.shard_id] = reader.name
    if partial and not shards:
        raise InputError(readers[0].name, "--partial needs encode shards (`simlm encode --num-shards N --shard-id "
                         "I`): a whole stream records no set it belongs to")  # fmt: skip
    for (corpus, num_shards), seen in shards.items():
        names = missing_shards(num_shards, seen)
        if names and not partial:
            raise InputError(
                next(iter(seen.values())),
                f"holds shard {min(seen)} of {num_shards} of {corpus}, but shard(s) {names} are missing from the "
                "inputs; index every shard together (or build one part of a set with --partial)",
            )
    return [{"corpus": corpus, "num_shards": n, "shard_ids": sorted(seen)} for (corpus, n), seen in shards.items()]


def _merge_streams(readers: list[EmbeddingReader]) -> Iterator[tuple[str, list[str], np.ndarray]]:
    """(stream name, ids, vectors) blocks of every stream, after checking they were made alike."""
    first = readers[0].header
    for reader in readers:
        if reader.header.dim != first.dim or reader.header.encoder != first.encoder:
            raise InputError(
                reader.name,
                f"made by a different encoder or dimension than {readers[0].name}; cannot index together",
            )
        for ids, vectors in reader:
            yield reader.name, ids, vectors


def build_dense_index(
    readers: list[EmbeddingReader],
    output: str | Path,
    options: BuildOptions,
    progress: Any = None,
    run_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read every stream to its end marker, build the index, and write the directory atomically (`run_config`,
    the command's resolved options, recorded in meta.json)."""
    faiss = faiss_module()
    parts = check_shards(readers, options.partial)
    header = readers[0].header
    dim = header.dim
    docids: list[str] = []
    seen: set[str] = set()
    started = time.perf_counter()
    flat_or_hnsw = options.index_type in (IndexType.flat, IndexType.hnsw)
    index, search_params = _empty_index(faiss, dim, options) if flat_or_hnsw else (None, {})
    with contextlib.ExitStack() as stack:
        # IVF-PQ is trained before vectors are added: until then they wait on disk beside the output, not in memory.
        spool = None if flat_or_hnsw else stack.enter_context(_VectorSpool(Path(output), dim))
        for name, ids, vectors in _merge_streams(readers):
            for docid in ids:
                if len(docid.split()) != 1:  # the runs `search` writes would not read back (issue 10)
                    raise InputError(name, f"document id {docid!r} is empty or holds white space")
                if docid in seen:
                    raise InputError(
                        name, f"duplicate document id {docid!r} (already read from this or an earlier stream)"
                    )
                seen.add(docid)
            docids.extend(ids)
            if spool is None:
                index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            else:
                spool.add(vectors)
            if progress is not None:
                progress(len(ids))
        if not docids:
            raise InputError(readers[0].name, "no vectors in the input")
        if spool is not None:
            index, search_params = _build_ivfpq(faiss, spool.vectors(), dim, options)
    meta = {
        "kind": DENSE_KIND,
        "format_version": 1,
        "index_type": options.index_type.value,
        "count": len(docids),
        "dim": dim,
        "encoder": header.encoder,
        # of the passage vectors; queries use `search --precision` / `--backend`, which `search` compares
        "precision": streams_record(readers, "precision"),
        "backend": streams_record(readers, "backend"),
        "search_params": search_params,
        "dry_run": any(reader.header.dry_run for reader in readers),
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    if options.partial:
        meta["part_of"] = parts
    if run_config is not None:
        meta["run_config"] = run_config
    with atomic_directory(output, marker=META_FILE, owned=is_index_dir) as tmp:
        _write_faiss(faiss, _to_cpu(faiss, index), tmp / INDEX_FILE, Path(output))
        (tmp / DOCIDS_FILE).write_text("".join(f"{d}\n" for d in docids), encoding="utf-8")
        write_meta(tmp, meta)
    return meta


def _write_faiss(faiss: Any, index: Any, path: Path, output: Path) -> None:
    """faiss.write_index, whose C++ errors come as RuntimeError: a full disk becomes the OSError the CLI prints
    as one line naming the output (as every other writer's), anything else a one-line error naming it too."""
    try:
        faiss.write_index(index, str(path))
    except RuntimeError as err:
        if "No space left on device" in str(err):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(output)) from None
        raise SimlmError(f"{output}: cannot write {INDEX_FILE} ({_short(err)})") from None


def _empty_index(faiss: Any, dim: int, options: BuildOptions) -> tuple[Any, dict[str, int]]:
    """A flat or HNSW index to add vectors to, and the search parameters meta.json records for it."""
    if options.index_type is IndexType.flat:
        index = faiss.IndexFlatIP(dim)
        return (_to_gpu(faiss, index) if options.gpu else index), {}
    if options.gpu:
        raise SimlmError("--gpu: faiss builds HNSW on the CPU only; drop --gpu for --type hnsw")
    index = faiss.IndexHNSWFlat(dim, options.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = options.ef_construction
    return index, {"ef_search": options.ef_search}


def _build_ivfpq(faiss: Any, vectors: np.ndarray, dim: int, options: BuildOptions) -> tuple[Any, dict[str, int]]:
    """A trained IVF-PQ index holding `vectors`, and the search parameters meta.json records for it."""
    count = len(vectors)
    # faiss trains each PQ codebook (256 centroids) and the IVF quantizer on the vectors themselves.
    if count < PQ_CENTROIDS:
        raise SimlmError(f"--type ivfpq needs at least {PQ_CENTROIDS} vectors to train its codebooks, got {count}; "
                         "use --type flat")  # fmt: skip
    nlist = options.nlist or max(1, min(int(4 * math.sqrt(count)), count // 39))
    if count < nlist * 39 and options.nlist:
        raise SimlmError(f"--nlist {nlist} needs at least {nlist * 39} vectors to train, got {count}")
    pq_m = _pq_m(dim, options.pq_m)
    # "np": no polysemous training. faiss's factory otherwise reorders the PQ centroids for Hamming-distance
    # filtering, which simlm's searches never use; it took 58% of the CPU time of a 30k x 384-d build (264 s
    # against 110 s, 2 shared cores, faiss's default BLAS threshold) and changed no search result (same ids and
    # scores); tests/index/test_dense.py checks the latter.
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{pq_m}np", faiss.METRIC_INNER_PRODUCT)
    if options.gpu:
        index = _to_gpu(faiss, index)
    # A fixed random sample trains the coarse quantizer and the codebooks (faiss asks for 39-256 points per
    # centroid); the vectors are then added block by block from the spool.
    sample_size = min(count, TRAIN_POINTS_PER_CENTROID * max(nlist, PQ_CENTROIDS))
    sample = np.sort(np.random.default_rng(0).choice(count, size=sample_size, replace=False))
    index.train(np.ascontiguousarray(vectors[sample]))
    for start in range(0, count, ADD_BLOCK):
        index.add(np.ascontiguousarray(vectors[start : start + ADD_BLOCK]))
    return index, {"nprobe": min(options.nprobe, nlist), "nlist": nlist, "pq_m": pq_m}


def _to_gpu(faiss: Any, index: Any) -> Any:
    require_gpu()
    return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)


def _to_cpu(faiss: Any, index: Any) -> Any:
    return (
        faiss.index_gpu_to_cpu(index) if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__ else index
    )


class _Rankings:
    """faiss output -> rankings, for anything with `docids` and `docid_bytes` whose rows index them."""

    docids: np.ndarray
    docid_bytes: np.ndarray | None
    meta: dict[str, Any]
    path: Path

    def check_query_dim(self, dim: int) -> None:
        """Query vectors must have the index's dimension (a --model other than the one that built it may not)."""
        if dim != self.meta["dim"]:
            raise SimlmError(
                f"the query model's vectors have {dim} dimensions, the index {self.path} holds {self.meta['dim']}-d "
                "vectors: search with the model that built the index (drop --model, or re-encode the corpus)"
            )

    def rankings(self, qids: Iterable[str], scores: np.ndarray, rows: np.ndarray) -> Iterator[tuple]:
        """Turn faiss output into (qid, docids, scores) rankings for the run writers."""
        for qid, score_row, id_row in zip(qids, scores, rows):
            keep = id_row >= 0
            yield qid, self.docids[id_row[keep]].tolist(), score_row[keep].tolist()

    def ranked_blocks(self, qids: list[str], scores: np.ndarray, rows: np.ndarray) -> Iterator[RankedBlock | tuple]:
        """The same rankings as one `RankedBlock` (formatted by numpy) where every query got k rows; otherwise
        (HNSW/IVF can return fewer) one ranking per query."""
        if (rows < 0).any() or self.docid_bytes is None:
            yield from self.rankings(qids, scores, rows)
        else:
            yield RankedBlock(list(qids), self.docid_bytes[rows], scores)


class DenseIndex(_Rankings):
    """A dense index directory, checked for consistency when opened."""

    def __init__(self, index_dir: str | Path, gpu: bool = False):
        faiss = faiss_module()
        self.path = Path(index_dir)
        self.meta = read_meta(self.path)
        if self.meta["kind"] != DENSE_KIND:
            raise InputError(self.path, "is a BM25 index, not a dense one")
        try:
            self.index = faiss.read_index(str(self.path / INDEX_FILE))
        except RuntimeError as err:
            raise InputError(self.path / INDEX_FILE, f"corrupt or unreadable faiss index ({_short(err)})") from None
        self.docids = read_docids(self.path / DOCIDS_FILE)
        count = _meta_int(self.path, self.meta, "count")
        if not (self.index.ntotal == len(self.docids) == count):
            raise InputError(
                self.path,
                f"corrupt index: meta.json says {count} vectors, index.faiss holds {self.index.ntotal}, "
                f"docids.txt {len(self.docids)}",
            )
        if self.index.d != _meta_int(self.path, self.meta, "dim"):
            raise InputError(self.path, f"corrupt index: dim {self.index.d} != meta.json dim {self.meta.get('dim')}")
        if not isinstance(self.meta.get("encoder"), dict):
            message = f"expected the encoder settings (an object), got {self.meta.get('encoder')!r}"
            raise InputError(self.path / META_FILE, message, field="encoder")
        params = self.meta.get("search_params", {})
        if not isinstance(params, dict) or not all(_positive_int(v) for v in params.values()):
            raise InputError(
                self.path / META_FILE, f"expected positive integers, got {params!r}", field="search_params"
            )
        try:
            self.set_search_params(**params)
        except SimlmError as err:
            raise InputError(self.path / META_FILE, str(err), field="search_params") from None
        if gpu:
            self.index = _to_gpu(faiss, self.index)
        self.torch_search: TorchFlatSearch | None = None

    @property
    def flat(self) -> bool:
        """An exact (flat inner-product) index, which `use_torch` can search."""
        return isinstance(self.index, faiss_module().IndexFlat)

    def use_torch(self, device: str, shard_rows: int | None = None) -> TorchFlatSearch:
        """Search from now on with torch on `device` (exact, the same results as faiss's flat search)."""
        if not self.flat:
            raise SimlmError(f"--search-backend torch searches flat (exact) indexes; {self.path} is "
                             f"{self.meta.get('index_type')}: use --search-backend faiss (faiss-gpu: --gpu)")  # fmt: skip
        vectors = faiss_module().rev_swig_ptr(self.index.get_xb(), self.index.ntotal * self.index.d)
        self.torch_search = TorchFlatSearch(vectors.reshape(self.index.ntotal, self.index.d), device, shard_rows)
        return self.torch_search

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None, **_: Any) -> None:
        faiss = faiss_module()
        if ef_search and hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = ef_search
        if nprobe:
            try:
                ivf = faiss.extract_index_ivf(self.index)
            except RuntimeError:  # a flat or HNSW index has no lists to probe
                raise SimlmError(
                    f"--nprobe applies to ivfpq indexes; {self.path} is {self.meta.get('index_type')}"
                ) from None
            ivf.nprobe = nprobe

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, row numbers); rows are -1 where fewer than k documents exist."""
        self.check_query_dim(queries.shape[1])  # faiss would stop on a bare AssertionError
        k = min(k, self.index.ntotal)
        if self.torch_search is not None:
            return self.torch_search.search(queries, k)
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    @functools.cached_property
    def docid_bytes(self) -> np.ndarray | None:
        """The document ids as fixed-width UTF-8 bytes, for `RankedBlock`; None if an id holds a NUL byte."""
        raw = (self.path / DOCIDS_FILE).read_bytes()
        return None if b"\x00" in raw else np.array(raw.split(b"\n")[:-1])


class MergedDenseIndex(_Rankings):
    """Several dense indexes (parts of one corpus, e.g. built on several machines) searched as one: each part's
    top k, merged into the exact top k of their union. Rows number the parts' documents one after the other; equal
    scores keep that order (an earlier part first), as one index holding the parts in that order would."""

    def __init__(self, parts: list[DenseIndex]):
        first = parts[0]
        for part in parts[1:]:
            if part.meta["dim"] != first.meta["dim"] or part.meta["encoder"] != first.meta["encoder"]:
                raise InputError(part.path, f"made by a different encoder or dimension than {first.path}; "
                                 "cannot search them together")  # fmt: skip
        self.parts = parts
        self.path = first.path
        self.offsets = np.cumsum([0] + [len(part.docids) for part in parts])
        self.meta = {**first.meta, "count": int(self.offsets[-1]), "dry_run": any(p.meta.get("dry_run") for p in parts)}
        self.docids = np.concatenate([part.docids for part in parts])
        _check_disjoint(parts)

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None, **_: Any) -> None:
        for part in self.parts:
            part.set_search_params(ef_search=ef_search, nprobe=nprobe)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, row numbers) over every part; rows are -1 where fewer than k documents were found."""
        found = [part.search(queries, k) for part in self.parts]
        scores = np.concatenate([s for s, _ in found], axis=1)
        rows = np.concatenate([np.where(r >= 0, r + o, -1) for (_, r), o in zip(found, self.offsets)], axis=1)
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)  # faiss pads missing rows with -FLT_MAX
        order = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, len(self.docids))]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)

    @functools.cached_property
    def docid_bytes(self) -> np.ndarray | None:
        each = [part.docid_bytes for part in self.parts]
        return None if any(ids is None for ids in each) else np.concatenate(each)


def _check_disjoint(parts: list[DenseIndex]) -> None:
    """A document in two parts would be ranked twice in one run."""
    owner: dict[str, Path] = {}
    for part in parts:
        ids = part.docids.tolist()
        if len(owner) + len(ids) != len(owner.keys() | ids):
            docid = next(d for d in ids if d in owner)
            raise InputError(part.path, f"document id {docid!r} is also in {owner[docid]}; parts must be disjoint")
        owner.update(dict.fromkeys(ids, part.path))


def read_docids(path: Path) -> np.ndarray:
    """docids.txt: one id per line, none empty or holding white space (a run line naming it would not read back)."""
    if not path.is_file():
        raise InputError(path, "missing: the index directory is incomplete")
    try:
        text = path.read_bytes().decode("utf-8")  # as written: a \r is refused, not dropped (docid_bytes keeps it)
    except UnicodeDecodeError as err:
        raise InputError(path, f"corrupt: invalid UTF-8 at byte {err.start}") from None
    bad = _BAD_DOCID.search(text)  # one scan in C: millions of ids, checked in a fraction of a second
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1 + (bad.group() == "\n\n")
        what = "is empty" if bad.group().endswith("\n") else "holds white space"
        raise InputError(path, f"corrupt: the document id {what} (run files could not name it)", line=line)
    return np.array(text.split("\n")[:-1], dtype=object)


# An empty line (at the start or between two ids) or any white space but the line breaks.
_BAD_DOCID = re.compile(r"\A\n|\n\n|[^\S\n]")


def _meta_int(index_dir: Path, meta: dict[str, Any], name: str) -> int:
    """meta.json's `count` or `dim`, which must be an integer (JSON's "30" is a string, not a count)."""
    value = meta.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        got = "nothing" if value is None else f"{type(value).__name__} {value!r}"
        raise InputError(index_dir / META_FILE, f"expected a non-negative integer, got {got}", field=name)
    return value


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _short(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(err).__name__
