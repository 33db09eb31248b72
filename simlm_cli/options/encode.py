"""`simlm encode`'s config: a corpus -> an embedding stream."""

from __future__ import annotations

from dataclasses import dataclass

from simlm_cli.device import CUDA_BATCH_TOKENS
from simlm_cli.flags import flag, group
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.options.shared import EncoderFlags, Inference, corpus_format_flag, dry_run_flag


@dataclass(frozen=True, kw_only=True)
class EncodeConfig:
    corpus: str = flag("--corpus", "-c", help="BEIR corpus.jsonl, MS MARCO/DPR TSV or Pyserini JSONL (.gz ok).")
    output: str | None = flag(
        "--output",
        "-o",
        default=None,
        help="Stream file (or directory for shards). Default: stdout, which must be a pipe.",
    )
    encoder: EncoderFlags = group(EncoderFlags)
    corpus_format: CorpusFormat = corpus_format_flag()
    batch_size: int | None = flag(
        "--batch-size",
        default=None,
        min=1,
        help="Texts per forward pass. Default: 16 on CPU; on CUDA see --max-batch-tokens.",
    )
    # a batch's padded tokens (with batch_size: both bound it)
    max_batch_tokens: int | None = flag(
        "--max-batch-tokens",
        default=None,
        min=1,
        help="Batches of length-sorted texts hold as many as fit this many padded tokens (with --batch-size: both "
        f"bound a batch). Default: {CUDA_BATCH_TOKENS} on CUDA unless --batch-size is given; none on CPU.",
    )
    # bounds memory
    chunk_size: int = flag("--chunk-size", default=2048, min=1, help="Passages length-sorted together (memory bound).")
    shard_id: int | None = flag(
        "--shard-id", default=None, help="Encode passages i with i % num-shards == shard-id."
    )  # None: this process's torchrun rank, or 0
    num_shards: int | None = flag("--num-shards", default=None, help="Default: torchrun's WORLD_SIZE, else 1.")
    runtime: Inference = group(Inference)
    dry_run: bool = dry_run_flag()
    prefetch: int | None = (
        None  # chunks tokenized ahead of the model on a background thread (0: none; None: the encoder's)
    )
