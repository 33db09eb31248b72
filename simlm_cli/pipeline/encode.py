"""Stream a corpus through an encoder into an embedding stream, chunk by chunk."""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from simlm_cli.device import Runtime
from simlm_cli.dry_run import PASSAGES as DRY_RUN_PASSAGES
from simlm_cli.errors import SimlmError
from simlm_cli.io.corpus import Passage, iter_corpus
from simlm_cli.io.embeddings import EmbeddingWriter, StreamHeader
from simlm_cli.io.files import atomic_output, check_output_file, count_lines, is_stdout
from simlm_cli.options.encode import EncodeConfig


def resolve_shard(shard_id: int | None, num_shards: int | None) -> tuple[int, int]:
    """Explicit flags win; under torchrun each rank encodes its own shard by default."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if num_shards is None:
        num_shards = world
    if shard_id is None:
        if num_shards > 1 and world == 1:
            raise SimlmError(f"--num-shards {num_shards} needs --shard-id (which shard this process encodes)")
        shard_id = int(os.environ.get("RANK", "0")) if num_shards > 1 else 0
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise SimlmError(f"--shard-id {shard_id} --num-shards {num_shards}: need 0 <= shard-id < num-shards")
    return shard_id, num_shards


def shard_output_path(output: str, shard_id: int, num_shards: int) -> str:
    """Where one shard goes: `{shard}` in the name is replaced; a directory gets shard-I-of-N.emb inside."""
    suffix = f"{shard_id:05d}-of-{num_shards:05d}"
    if "{shard}" in output:
        return output.replace("{shard}", suffix)
    if output.endswith(os.sep) or Path(output).is_dir():
        return str(Path(output) / f"shard-{suffix}.emb")
    return output if num_shards == 1 else f"{output}.shard-{suffix}"


def _shard(passages: Iterator[Passage], shard_id: int, num_shards: int) -> Iterator[Passage]:
    return passages if num_shards == 1 else itertools.islice(passages, shard_id, None, num_shards)


def _chunks(passages: Iterator[Passage], size: int) -> Iterator[list[Passage]]:
    while chunk := list(itertools.islice(passages, size)):
        yield chunk


def encode_corpus(config: EncodeConfig, runtime: Runtime | None = None) -> dict:
    """Encode one shard of a corpus to a stream; returns a summary (count, seconds, rate, output)."""
    from simlm_cli.console import info, progress
    from simlm_cli.models.biencoder import BiEncoder

    shard_id, num_shards = resolve_shard(config.shard_id, config.num_shards)
    settings = config.encoder.resolve()
    if is_stdout(config.output):  # `--output -` is stdout, as for every command that writes one file
        config = replace(config, output=None)
    if config.output is not None:
        inputs = [config.corpus, settings.model]
        check_output_file(shard_output_path(config.output, shard_id, num_shards), inputs)
    runtime = runtime or config.runtime.resolve()
    passages = _shard(iter_corpus(config.corpus, config.corpus_format), shard_id, num_shards)
    if config.dry_run:
        passages = itertools.islice(passages, DRY_RUN_PASSAGES)
    lines = count_lines(config.corpus)  # 0 for a pipe, which cannot be counted without being consumed
    total = DRY_RUN_PASSAGES if config.dry_run else (max(lines // num_shards, 1) if lines else None)
    if config.output is None and sys.stdout.isatty():
        raise SimlmError("refusing to write binary embeddings to a terminal: pass --output FILE or pipe")
    if config.output is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SimlmError("under torchrun every rank writes its own shard: pass --output DIR/ (then `simlm index DIR`)")

    # Read (and so validate) the first chunk before loading the model or printing anything: a bad corpus
    # then fails fast, with its error as the only line.
    chunks = _chunks(passages, config.chunk_size)
    first_chunk = next(chunks, [])
    s = settings
    encoder = BiEncoder.load(s, runtime, batch_size=config.batch_size, max_batch_tokens=config.max_batch_tokens)
    info(
        f"encoding {config.corpus} (shard {shard_id}/{num_shards}) with {s.model}: {s.pooling} pooling, "
        f"{'L2-normalised' if s.normalize else 'unnormalised'}, {s.passage_format} passages of <= "
        f"{s.passage_max_length} tokens [{s.source}]; {runtime.describe()}"
    )
    info(f"encoder settings: {s.describe_sources()}")
    header = StreamHeader(
        dim=encoder.dim, dtype="float32", encoder=s.to_json(), shard_id=shard_id, num_shards=num_shards,
        corpus=str(config.corpus), dry_run=config.dry_run, precision=runtime.precision.value, backend=runtime.backend.value,
    )  # fmt: skip
    output = None if config.output is None else shard_output_path(config.output, shard_id, num_shards)
    started = time.perf_counter()
    with ExitStack() as stack:
        handle = sys.stdout.buffer if output is None else stack.enter_context(atomic_output(output, "wb"))
        writer = EmbeddingWriter(handle, header)
        bar = stack.enter_context(progress())
        task = bar.add_task("encode", total=total, rate="")
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = done / (time.perf_counter() - started)
            bar.update(task, advance=n, rate=f"{rate:,.1f} passages/s")

        # The next chunk is read and tokenized while the model encodes this one; at most prefetch + 2 chunks are
        # in memory at once (closing() ends the background work if writing fails).
        pending = (chunk for chunk in itertools.chain([first_chunk], chunks) if chunk)
        with contextlib.closing(encoder.encode_stream(pending, advance, config.prefetch)) as encoded:
            for chunk, vectors in encoded:
                writer.write([p.id for p in chunk], vectors)
        writer.close()
    seconds = time.perf_counter() - started
    summary = {
        "count": writer.count,
        "seconds": round(seconds, 3),
        "passages_per_second": writer.count / seconds,
    }
    info(f"encoded {writer.count:,} passages in {seconds:.1f} s -> {output or 'stdout'}")
    return {**summary, "output": output}
