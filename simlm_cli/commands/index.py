"""`simlm index`: embedding streams -> a faiss index directory, or a corpus -> a BM25 (Lucene) index."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from simlm_cli.commands import options
from simlm_cli.commands.config import resolved_options
from simlm_cli.errors import SimlmError
from simlm_cli.index import IndexType
from simlm_cli.io.corpus import CorpusFormat


def _stream_paths(inputs: list[str]) -> list[str]:
    """Files as given; a directory stands for the shard files inside it; nothing given means stdin."""
    if not inputs:
        if sys.stdin.isatty():
            raise SimlmError("no input: pipe `simlm encode` into `simlm index`, or name embedding files")
        return ["-"]
    paths: list[str] = []
    for item in inputs:
        if Path(item).is_dir():
            shards = sorted(str(p) for p in Path(item).iterdir() if p.is_file() and not p.name.startswith("."))
            if not shards:
                raise SimlmError(f"{item}: directory holds no embedding files")
            paths.extend(shards)
        else:
            paths.append(item)
    return paths


def index(
    inputs: list[str] = typer.Argument(
        None, help="Embedding streams from `simlm encode` (files, shard dirs). Default: stdin."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Index directory to write (replaced atomically)."),
    bm25: bool = typer.Option(False, "--bm25", help="Build a Pyserini/Lucene BM25 index of --corpus instead."),
    corpus: str = typer.Option(None, "--corpus", "-c", help="With --bm25: the corpus to index."),
    corpus_format: CorpusFormat = options.corpus_format_option("With --bm25: force the format."),
    index_type: IndexType = typer.Option(
        IndexType.flat, "--type", help="flat: exact inner product (the paper's); hnsw; ivfpq."
    ),
    hnsw_m: int = typer.Option(32, "--hnsw-m", min=4, help="HNSW links per node."),
    ef_construction: int = typer.Option(200, "--ef-construction", min=1, help="HNSW build breadth."),
    ef_search: int = typer.Option(
        256, "--ef-search", min=1, help="HNSW search breadth (stored; `search` can override)."
    ),
    nlist: int = typer.Option(0, "--nlist", min=0, help="IVF lists (0: ~4*sqrt(N))."),
    pq_m: int = typer.Option(0, "--pq-m", min=0, help="PQ sub-quantizers; must divide dim (0: auto)."),
    nprobe: int = typer.Option(32, "--nprobe", min=1, help="IVF lists probed (stored; `search` can override)."),
    gpu: bool = typer.Option(False, "--gpu", help="Build on the GPU with faiss-gpu; fails if none is present."),
    partial: bool = typer.Option(
        False,
        "--partial",
        help="The inputs are some of an encode's shards: build one part of a set (recorded in "
        "meta.json); `search --index A --index B ...` searches the parts together and refuses an incomplete set.",
    ),
    threads: int = options.threads_option("With --bm25: indexing threads."),
) -> None:
    """Build an index directory that `simlm search` reads."""
    from simlm_cli.console import info
    from simlm_cli.index import META_FILE, is_index_dir
    from simlm_cli.io.files import check_not_an_input, check_replaceable

    # before any work: never replace a directory simlm did not write, nor one holding an input
    check_replaceable(output, META_FILE, is_index_dir)
    check_not_an_input(output, [*(inputs or []), corpus], directory=True)
    if bm25:
        if corpus is None:
            raise SimlmError("--bm25 needs --corpus")
        if inputs:
            raise SimlmError("--bm25 indexes --corpus; embedding inputs are for dense indexes")
        if partial:
            raise SimlmError("--partial is for dense indexes: BM25 (Lucene) parts are not merged by `search`")
        from simlm_cli.index.bm25 import build_bm25_index

        meta = build_bm25_index(corpus, output, corpus_format, threads, run_config=resolved_options())
        info(f"BM25 index of {meta['count']:,} passages in {meta['build_seconds']:.1f} s -> {output}")
        return
    if corpus is not None:
        raise SimlmError("--corpus is for --bm25; a dense index reads embedding streams")
    from simlm_cli.index.dense import BuildOptions
    from simlm_cli.pipeline.index import build_index_from_streams

    opts = BuildOptions(
        index_type=index_type, hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search,
        nlist=nlist, pq_m=pq_m, nprobe=nprobe, gpu=gpu, partial=partial,
    )  # fmt: skip
    build_index_from_streams(_stream_paths(inputs or []), output, opts, run_config=resolved_options())


register = options.registrar(
    index,
    "Embedding streams -> faiss index; --bm25: Lucene index.",
    options.example("simlm index corpus.emb --output idx --type hnsw"),
)
