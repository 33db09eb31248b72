"""`simlm index`'s config: embedding streams -> a faiss index, or a corpus -> a BM25 (Lucene) index."""

from __future__ import annotations

from dataclasses import dataclass

from simlm_cli.flags import argument, flag, group
from simlm_cli.index import DEFAULT_THREADS, IndexType
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.options.shared import corpus_format_flag


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """How a dense (faiss) index is built."""

    index_type: IndexType = flag(
        "--type", default=IndexType.flat, help="flat: exact inner product (the paper's); hnsw; ivfpq."
    )
    hnsw_m: int = flag("--hnsw-m", default=32, min=4, help="HNSW links per node.")
    ef_construction: int = flag("--ef-construction", default=200, min=1, help="HNSW build breadth.")
    ef_search: int = flag(
        "--ef-search", default=256, min=1, help="HNSW search breadth (stored; `search` can override)."
    )
    nlist: int = flag("--nlist", default=0, min=0, help="IVF lists (0: ~4*sqrt(N)).")
    # 0: the largest of dim/4, dim/8, ... that divides dim
    pq_m: int = flag("--pq-m", default=0, min=0, help="PQ sub-quantizers; must divide dim (0: auto).")
    nprobe: int = flag("--nprobe", default=32, min=1, help="IVF lists probed (stored; `search` can override).")
    gpu: bool = flag("--gpu", default=False, help="Build on the GPU with faiss-gpu; fails if none is present.")
    # the streams are some shards of a corpus: record which, so search wants the others
    partial: bool = flag(
        "--partial",
        default=False,
        help="The inputs are some of an encode's shards: build one part of a set (recorded in meta.json); "
        "`search --index A --index B ...` searches the parts together and refuses an incomplete set.",
    )


@dataclass(frozen=True, kw_only=True)
class IndexConfig:
    inputs: list[str] = argument(
        default=[], help="Embedding streams from `simlm encode` (files, shard dirs). Default: stdin."
    )
    output: str = flag("--output", "-o", help="Index directory to write (replaced atomically).")
    bm25: bool = flag("--bm25", default=False, help="Build a Pyserini/Lucene BM25 index of --corpus instead.")
    corpus: str | None = flag("--corpus", "-c", default=None, help="With --bm25: the corpus to index.")
    corpus_format: CorpusFormat = corpus_format_flag("With --bm25: force the corpus format.")
    dense: BuildOptions = group(BuildOptions)
    threads: int = flag("--threads", default=DEFAULT_THREADS, min=1, help="With --bm25: indexing threads.")
