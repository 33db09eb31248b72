"""`simlm search`'s config: queries -> a run, from a dense or BM25 index."""

from __future__ import annotations

from dataclasses import dataclass

from simlm_cli.flags import flag, group
from simlm_cli.io.runs import RunFormat
from simlm_cli.options.shared import BM25Search, InputFormats, QueryEncoding, dry_run_flag, tag_flag


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    index: list[str] = flag(
        "--index",
        "-i",
        help="Index directory from `simlm index` (dense or --bm25). Repeat for the parts of a dense index (e.g. "
        "built with --partial): searched as one, top-k merged exactly.",
    )
    queries: str = flag("--queries", "-q", help="BEIR queries.jsonl or TSV qid<TAB>text (.gz ok).")
    output: str | None = flag("--output", "-o", default=None, help="Run file (.tsv: MS MARCO format). Default: stdout.")
    qrels: str | None = flag("--qrels", default=None, help="Search only the queries judged in these qrels.")
    k: int = flag("--k", "-k", default=1000, min=1, help="Documents per query.")
    run_format: RunFormat = flag("--format", default=RunFormat.auto, help="trec, msmarco, or auto (by extension).")
    tag: str = tag_flag("simlm")
    dense: QueryEncoding = group(QueryEncoding)
    gpu: bool = flag("--gpu", default=False, help="Dense: search on the GPU with faiss-gpu; fails if none is present.")
    nprobe: int | None = flag("--nprobe", default=None, min=1, help="IVF-PQ: lists probed (default: as built).")
    ef_search: int | None = flag("--ef-search", default=None, min=1, help="HNSW: search breadth (default: as built).")
    bm25: BM25Search = group(BM25Search)
    formats: InputFormats = group(InputFormats)
    dry_run: bool = dry_run_flag()
