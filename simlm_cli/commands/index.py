"""`simlm index`: embedding streams -> a faiss index directory, or a corpus -> a BM25 (Lucene) index."""

from __future__ import annotations

from simlm_cli.commands import options
from simlm_cli.commands.config import resolved_options
from simlm_cli.flags import command_from
from simlm_cli.options.index import IndexConfig


def index(config: IndexConfig) -> None:
    """Build an index directory that `simlm search` reads."""
    from simlm_cli.pipeline.index import run_index

    run_index(config, run_config=resolved_options())


register = options.registrar(
    command_from(IndexConfig, index),
    "Embedding streams -> faiss index; --bm25: Lucene index.",
    options.example("simlm index corpus.emb --output idx --type hnsw"),
)
