"""`simlm search`: queries -> a run, from a dense (faiss) or BM25 (Lucene) index."""

from __future__ import annotations

from simlm_cli.commands import options
from simlm_cli.flags import command_from
from simlm_cli.options.search import SearchConfig


def search(config: SearchConfig) -> None:
    """Retrieve the top-k documents for each query and write a TREC or MS MARCO run."""
    from simlm_cli.pipeline.search import run_search

    run_search(config)


register = options.registrar(
    command_from(SearchConfig, search),
    "Queries -> run (TREC or MS MARCO), dense or BM25.",
    options.example("simlm search --index idx --queries queries.jsonl --output run.trec"),
)
