"""`simlm encode`: a corpus -> an embedding stream (file, or stdout when piped)."""

from __future__ import annotations

from simlm_cli.commands import options
from simlm_cli.flags import command_from
from simlm_cli.options.encode import EncodeConfig


def encode(config: EncodeConfig) -> None:
    """Encode passages into an embedding stream for `simlm index`.

    Streams the corpus chunk by chunk (never held in memory). Under torchrun each rank writes its own shard.
    """
    from simlm_cli.pipeline.encode import encode_corpus

    encode_corpus(config)


register = options.registrar(
    command_from(EncodeConfig, encode),
    "Corpus -> embedding stream (file, or stdout to a pipe).",
    options.example("simlm encode --model DIR --corpus corpus.jsonl | simlm index --output idx"),
)
