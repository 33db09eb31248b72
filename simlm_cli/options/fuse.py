"""`simlm fuse`'s config: two or more runs -> one run, weights given or tuned."""

from __future__ import annotations

from dataclasses import dataclass

from simlm_cli.flags import argument, flag
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.runs import RunFormat
from simlm_cli.options.shared import qrels_format_flag, run_format_flag, tag_flag
from simlm_cli.pipeline.fuse_options import FUSE_TAG, FuseMethod, Norm


@dataclass(frozen=True, kw_only=True)
class FuseConfig:
    runs: list[str] = argument(default=[], help="Two or more TREC or MS MARCO runs (each query's lines together).")
    output: str | None = flag(
        "--output", "-o", default=None, help="Fused run (.tsv: MS MARCO format). Default: stdout."
    )
    method: FuseMethod = flag(
        "--method",
        default=FuseMethod.rrf,
        help="rrf: sum of w/(rrf_k + rank); interpolate: sum of w * normalised score.",
    )
    # interpolate: None means minmax; rrf: must stay None
    norm: Norm | None = flag(
        "--norm",
        default=None,
        help="interpolate: per-query normalisation, minmax (default), zscore or none. A document a run did not "
        "retrieve gets that run's normalised minimum.",
    )
    rrf_k: float = flag("--rrf-k", default=60.0, help="rrf: the constant k in 1/(k + rank).")
    weights: list[float] | None = flag(
        "--weight", "-w", default=None, help="Repeatable, one per run in order (>= 0). Default: 1 each, or tuned."
    )
    tune_on: str | None = flag(
        "--tune-on",
        default=None,
        help="Tune the weights on these (training) qrels: a grid, the best on its judged queries.",
    )
    # None: tune on the runs to fuse (their judged queries)
    tune_runs: list[str] | None = flag(
        "--tune-run",
        default=None,
        help="Repeatable, one per run in order: runs of the training queries to tune on (default: the runs).",
    )
    metric: str = flag("--metric", "-M", default="ndcg@10", help="What --tune-on maximises (as `simlm evaluate`).")
    # None: TWO_RUN_STEP for 2 runs, coarser for more (`default_step`)
    grid_step: float | None = flag(
        "--grid-step",
        default=None,
        help="Tuning grid step over weights summing to 1. Default: 0.05 (2 runs), coarser beyond.",
    )
    tune_report: str | None = flag(
        "--tune-report",
        default=None,
        help="JSON with the weights (and the grid). Default with --tune-on: OUTPUT.fuse.json.",
    )
    relevance_level: int = flag("--relevance-level", default=1, min=1, help="--tune-on: grade >= this is relevant.")
    k: int = flag("--k", "-k", default=1000, min=1, help="Documents per query in the fused run.")
    # documents read per run and query (the top); None: all
    depth: int | None = flag(
        "--depth",
        default=None,
        min=1,
        help="Read only each run's top N documents per query (tuning runs too). Default: all.",
    )
    output_format: RunFormat = flag(
        "--format", default=RunFormat.auto, help="Output: trec, msmarco, or auto (by extension)."
    )
    run_format: RunFormat = run_format_flag("Force the input runs' format.")  # inputs
    tag: str = tag_flag(FUSE_TAG)
    qrels_format: QrelsFormat = qrels_format_flag()
