"""`simlm fuse`: two or more runs -> one run (RRF or normalised score interpolation), weights given or tuned."""

from __future__ import annotations

from simlm_cli.commands import options
from simlm_cli.flags import command_from
from simlm_cli.options.fuse import FuseConfig


def fuse(config: FuseConfig) -> None:
    """Fuse runs into one: reciprocal-rank fusion or normalised interpolation, weights given or tuned on qrels."""
    from simlm_cli.pipeline.fuse import run_fuse

    run_fuse(config)


register = options.registrar(
    command_from(FuseConfig, fuse),
    "2+ runs -> one run (RRF or score interpolation).",
    options.example("simlm fuse bm25.trec dense.trec --output fused.trec"),
)
