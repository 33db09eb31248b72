"""`simlm fuse`: two or more runs -> one run (RRF or normalised score interpolation), weights given or tuned."""

from __future__ import annotations

from pathlib import Path

import typer

from simlm_cli.commands import options
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.runs import RunFormat
from simlm_cli.pipeline.fuse_options import FUSE_TAG, FuseMethod, Norm


def fuse(
    runs: list[str] = typer.Argument(None, help="Two or more TREC or MS MARCO runs (each query's lines together)."),
    output: str = typer.Option(None, "--output", "-o", help="Fused run (.tsv: MS MARCO format). Default: stdout."),
    method: FuseMethod = typer.Option(
        FuseMethod.rrf, "--method", help="rrf: sum of w/(rrf_k + rank); interpolate: sum of w * normalised score."
    ),
    norm: Norm = typer.Option(
        None,
        "--norm",
        help="interpolate: per-query normalisation, minmax (default), zscore or none. A document a run did not "
        "retrieve gets that run's normalised minimum.",
    ),
    rrf_k: float = typer.Option(60.0, "--rrf-k", help="rrf: the constant k in 1/(k + rank)."),
    weight: list[float] = typer.Option(
        None, "--weight", "-w", help="Repeatable, one per run in order (>= 0). Default: 1 each, or tuned."
    ),
    tune_on: str = typer.Option(
        None, "--tune-on", help="Tune the weights on these (training) qrels: a grid, the best on its judged queries."
    ),
    tune_run: list[str] = typer.Option(
        None,
        "--tune-run",
        help="Repeatable, one per run in order: runs of the training queries to tune on (default: the runs).",
    ),
    metric: str = typer.Option("ndcg@10", "--metric", "-M", help="What --tune-on maximises (as `simlm evaluate`)."),
    grid_step: float = typer.Option(
        None, "--grid-step", help="Tuning grid step over weights summing to 1. Default: 0.05 (2 runs), coarser beyond."
    ),
    tune_report: Path = typer.Option(
        None, "--tune-report", help="JSON with the weights (and the grid). Default with --tune-on: OUTPUT.fuse.json."
    ),
    relevance_level: int = typer.Option(1, "--relevance-level", min=1, help="--tune-on: grade >= this is relevant."),
    k: int = typer.Option(1000, "--k", "-k", min=1, help="Documents per query in the fused run."),
    depth: int = typer.Option(
        None, "--depth", min=1, help="Read only each run's top N documents per query (tuning runs too). Default: all."
    ),
    run_format: RunFormat = typer.Option(
        RunFormat.auto, "--format", help="Output: trec, msmarco, or auto (by extension)."
    ),
    input_format: RunFormat = typer.Option(RunFormat.auto, "--run-format", help="Force the input runs' format."),
    tag: str = options.tag_option(FUSE_TAG),
    qrels_format: QrelsFormat = options.QrelsFormatOpt,
) -> None:
    """Fuse runs into one: reciprocal-rank fusion or normalised interpolation, weights given or tuned on qrels."""
    from simlm_cli.pipeline.fuse import FuseConfig, run_fuse

    config = FuseConfig(
        runs=[str(r) for r in runs or []], output=output, method=method, norm=norm, rrf_k=rrf_k,
        weights=list(weight) if weight else None, k=k, depth=depth, run_format=input_format, output_format=run_format, tag=tag,
        tune_on=str(tune_on) if tune_on else None, tune_runs=[str(r) for r in tune_run] if tune_run else None,
        metric=metric, relevance_level=relevance_level, qrels_format=qrels_format, grid_step=grid_step,
        tune_report=str(tune_report) if tune_report else None,
    )  # fmt: skip
    run_fuse(config)


register = options.registrar(
    fuse,
    "2+ runs -> one run (RRF or score interpolation).",
    options.example("simlm fuse bm25.trec dense.trec --output fused.trec"),
)
