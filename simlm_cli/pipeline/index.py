"""Read embedding streams into a faiss index directory."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from simlm_cli.index.dense import BuildOptions, build_dense_index, require_gpu
from simlm_cli.io.embeddings import EmbeddingReader, open_stream


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
