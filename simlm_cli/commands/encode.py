"""`simlm encode`: a corpus -> an embedding stream (file, or stdout when piped)."""

from __future__ import annotations

import typer

from simlm_cli.commands import options
from simlm_cli.device import Backend, Precision
from simlm_cli.io.corpus import CorpusFormat


def encode(
    corpus: str = typer.Option(
        ..., "--corpus", "-c", help="BEIR corpus.jsonl, MS MARCO/DPR TSV or Pyserini JSONL (.gz ok)."
    ),
    output: str = typer.Option(
        None,
        "--output",
        "-o",
        help="Stream file (or directory for shards). Default: stdout, which must be a pipe.",
    ),
    model: str = options.Model,
    corpus_format: CorpusFormat = options.CorpusFormatOpt,
    pooling: str = options.Pooling,
    normalize: bool = options.Normalize,
    query_max_length: int = options.QueryMaxLength,
    passage_max_length: int = options.PassageMaxLength,
    passage_format: str = options.PassageFormat,
    batch_size: int = options.BatchSize,
    max_batch_tokens: int = options.MaxBatchTokens,
    chunk_size: int = typer.Option(2048, "--chunk-size", min=1, help="Passages length-sorted together (memory bound)."),
    shard_id: int = typer.Option(None, "--shard-id", help="Encode passages i with i % num-shards == shard-id."),
    num_shards: int = typer.Option(None, "--num-shards", help="Default: torchrun's WORLD_SIZE, else 1."),
    device: str = options.Device,
    precision: Precision = options.PrecisionOpt,
    backend: Backend = options.BackendOpt,
    dry_run: bool = options.DryRun,
) -> None:
    """Encode passages into an embedding stream for `simlm index`.

    Streams the corpus chunk by chunk (never held in memory). Under torchrun each rank writes its own shard.
    """
    from simlm_cli.models.settings import resolve_settings
    from simlm_cli.pipeline.encode import EncodeConfig, encode_corpus

    settings = resolve_settings(
        model,
        pooling=pooling,
        normalize=normalize,
        query_max_length=query_max_length,
        passage_max_length=passage_max_length,
        passage_format=passage_format,
    )
    config = EncodeConfig(
        corpus=str(corpus), settings=settings, output=output, corpus_format=corpus_format, device=device,
        precision=precision, backend=backend, batch_size=batch_size, max_batch_tokens=max_batch_tokens, chunk_size=chunk_size,
        shard_id=shard_id, num_shards=num_shards, dry_run=dry_run,
    )  # fmt: skip
    encode_corpus(config)


register = options.registrar(
    encode,
    "Corpus -> embedding stream (file, or stdout to a pipe).",
    options.example("simlm encode --model DIR --corpus corpus.jsonl | simlm index --output idx"),
)
