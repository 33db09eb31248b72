"""Build an index directory: embedding streams into a faiss index, or a corpus into a BM25 (Lucene) index."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from simlm_cli.errors import SimlmError
from simlm_cli.index.dense import build_dense_index, require_gpu
from simlm_cli.io.embeddings import EmbeddingReader, open_stream
from simlm_cli.options.index import BuildOptions, IndexConfig


def stream_paths(inputs: list[str]) -> list[str]:
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


def run_index(config: IndexConfig, run_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the index `config` asks for (dense from its streams, or BM25 from --corpus); returns its meta.json.
    `run_config` (the command's resolved options) is recorded in meta.json."""
    from simlm_cli.console import info
    from simlm_cli.index import META_FILE, is_index_dir
    from simlm_cli.io.files import check_not_an_input, check_replaceable

    # before any work: never replace a directory simlm did not write, nor one holding an input
    check_replaceable(Path(config.output), META_FILE, is_index_dir)
    check_not_an_input(Path(config.output), [*config.inputs, config.corpus], directory=True)
    if config.bm25:
        if config.corpus is None:
            raise SimlmError("--bm25 needs --corpus")
        if config.inputs:
            raise SimlmError("--bm25 indexes --corpus; embedding inputs are for dense indexes")
        if config.dense.partial:
            raise SimlmError("--partial is for dense indexes: BM25 (Lucene) parts are not merged by `search`")
        from simlm_cli.index.bm25 import build_bm25_index

        meta = build_bm25_index(
            config.corpus, Path(config.output), config.corpus_format, config.threads, run_config=run_config
        )
        info(f"BM25 index of {meta['count']:,} passages in {meta['build_seconds']:.1f} s -> {config.output}")
        return meta
    if config.corpus is not None:
        raise SimlmError("--corpus is for --bm25; a dense index reads embedding streams")
    return build_index_from_streams(stream_paths(config.inputs), Path(config.output), config.dense, run_config)


def build_index_from_streams(
    paths: list[str], output: str | Path, options: BuildOptions, run_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A dense index of the streams in `paths`; `run_config` (the command's resolved options) goes into its
    meta.json, so that `simlm index --config OUTPUT/meta.json` rebuilds it."""
    from simlm_cli.console import info, progress

    if options.gpu:
        require_gpu()  # fail before reading a whole corpus of vectors
    with ExitStack() as stack:
        readers = []
        for path in paths:
            handle, name = open_stream(path)
            if path != "-":
                stack.enter_context(handle)
            readers.append(EmbeddingReader(handle, name))
        bar = stack.enter_context(progress())
        task = bar.add_task("index", total=None, rate="")
        meta = build_dense_index(
            readers, output, options, progress=lambda n: bar.update(task, advance=n), run_config=run_config
        )
    encoder = meta["encoder"]
    info(
        f"{meta['index_type']} index of {meta['count']:,} x {meta['dim']}-d vectors ({encoder.get('model')}, "
        f"{encoder.get('pooling')} pooling) in {meta['build_seconds']:.1f} s -> {output}"
    )
    return meta
