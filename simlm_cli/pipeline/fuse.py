"""`simlm fuse`: two or more runs -> one run, by reciprocal-rank fusion or score interpolation, with weights given
or tuned on training queries.

The arithmetic (RRF, min-max / z-score interpolation, the weight grid) is `simlm_cli.pipeline.fusion`; the runs are
streamed side by side by `simlm_cli.io.runs.iter_aligned`, one query's block of each run at a time (each run must
keep a query's lines together, as `iter_run_blocks` requires); the tuning table and JSON report are
`simlm_cli.pipeline.fuse_report`.

Tuning (`tune_weights`): the training runs (one per run to fuse, same order) are fused for every weight vector of a
grid over the simplex (2 runs: w = 0.00, 0.05, ..., 1.00 for the first and 1 - w for the second; more runs: a
coarser grid, `grid_points`), each fused run is cut to the output depth and scored with `simlm_cli.eval.metrics`
on the queries judged in the tuning qrels that the training runs hold; the best wins (ties: the vector nearest to
equal weights, then the first in grid order). No other qrels are read: the command has no way to name them.

Why not `pyserini.fusion` (1.6, installed): it offers RRF (no weights), 2-run interpolation of raw scores,
average, and min-max "normalize" (no weights; a query whose scores are all equal gets 1s), over whole runs read
into pandas frames; no z-score, no per-run weights after normalisation, no tuning, TREC runs only. Its import
alone is light (pandas, ~0.5 s here, no JVM), but wrapping it would still mean reading both runs whole and
re-doing the parsing errors, MS MARCO runs and weights around it. The arithmetic here is a few numpy lines per
query over this package's own streaming reader (one-line errors with file and line, MS MARCO input).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from simlm_cli.errors import SimlmError
from simlm_cli.io.files import check_output_file, is_stdout
from simlm_cli.io.runs import RunBlock, RunFormat, iter_aligned
from simlm_cli.options.fuse import FuseConfig
from simlm_cli.pipeline.fuse_options import FuseMethod, Norm
from simlm_cli.pipeline.fuse_report import render_grid, report_path, write_report
from simlm_cli.pipeline.fusion import best_weights, default_step, grid_points, top_k, unit_scores

MAX_GRID = 5000  # weight vectors a --grid-step may ask for (each is one evaluation of the tuning queries)


@dataclass
class TuneResult:
    weights: list[float]
    value: float
    queries: int
    grid: list[tuple[list[float], float]] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)  # the most documents a tuning run held for one query


# -- checks -------------------------------------------------------------------------------------------------------
def check_config(config: FuseConfig) -> FuseConfig:
    """Errors that need no file: one line each, before anything is read; the config with its metric's name
    normalised and `-o -` read as stdout."""
    count = len(config.runs)
    if count < 2:
        raise SimlmError(f"fuse needs at least 2 runs, got {count}")
    if config.method is FuseMethod.rrf and config.norm is not None:
        raise SimlmError("--norm applies to --method interpolate only (RRF uses ranks)")
    if config.rrf_k < 0 or not math.isfinite(config.rrf_k):
        raise SimlmError(f"--rrf-k {config.rrf_k}: must be a finite number >= 0")
    if config.weights is not None:
        if config.tune_on is not None:
            raise SimlmError("--weight and --tune-on exclude each other: give weights or tune them")
        if len(config.weights) != count:
            raise SimlmError(f"{len(config.weights)} --weight values for {count} runs: give one per run, in order")
        for weight in config.weights:
            if not math.isfinite(weight) or weight < 0:
                raise SimlmError(f"--weight {weight}: weights must be finite and >= 0")
        if not any(config.weights):
            raise SimlmError("every --weight is 0: at least one run must count")
    if config.tune_runs is not None:
        if config.tune_on is None:
            raise SimlmError("--tune-run needs --tune-on QRELS (the judgments of the training queries)")
        if len(config.tune_runs) != count:
            raise SimlmError(
                f"{len(config.tune_runs)} --tune-run files for {count} runs: give one per run to fuse, same order"
            )
    if config.grid_step is not None:
        if config.tune_on is None:
            raise SimlmError("--grid-step needs --tune-on QRELS")
        if not 0 < config.grid_step <= 1:
            raise SimlmError(f"--grid-step {config.grid_step}: must be in (0, 1]")
        parts = round(1 / config.grid_step)
        if abs(parts * config.grid_step - 1) > 1e-9:
            raise SimlmError(f"--grid-step {config.grid_step}: 1 must be a whole number of steps (e.g. 0.05, 0.1)")
        size = math.comb(parts + count - 1, count - 1)
        if size > MAX_GRID:
            raise SimlmError(
                f"--grid-step {config.grid_step}: {size:,} weight vectors for {count} runs; at most {MAX_GRID:,}"
            )
    if config.tune_on is not None:
        from simlm_cli.eval.metrics import parse_metric

        # lower case: the report's key, as evaluate's JSON
        config = replace(config, metric=parse_metric(config.metric).name)
    if is_stdout(config.output):  # `-o -`: stdout, as for search and encode (and no `-.fuse.json` report)
        config = replace(config, output=None)
    return config


# -- fusing -------------------------------------------------------------------------------------------------------
def iter_cut(
    paths: Sequence[str], fmt: RunFormat, depth: int | None, depths: list[int]
) -> Iterator[tuple[str, list[RunBlock | None]]]:
    """`iter_aligned`, each block cut to its top `depth` documents; `depths` gets each run's longest block."""
    depths[:] = [0] * len(paths)
    for qid, blocks in iter_aligned(paths, fmt):
        for i, block in enumerate(blocks):
            if block is None:
                continue
            if depth is not None and len(block.docids) > depth:
                blocks[i] = block = block.top(depth)
            depths[i] = max(depths[i], len(block.docids))
        yield qid, blocks


def fuse_rankings(
    config: FuseConfig, weights: Sequence[float], depths: list[int] | None = None
) -> Iterator[tuple[str, list[str], list[float]]]:
    norm = config.norm or Norm.minmax
    vector = np.asarray(weights, dtype=np.float64)
    for qid, blocks in iter_cut(config.runs, config.run_format, config.depth, [] if depths is None else depths):
        docids, matrix = unit_scores(blocks, config.method, norm, config.rrf_k)
        yield (qid, *top_k(docids, vector @ matrix, config.k))


# -- tuning -------------------------------------------------------------------------------------------------------
def tune_weights(config: FuseConfig, grid: list[list[float]] | None = None) -> TuneResult:
    """The grid's best weight vector on `config.tune_on`, fusing the training runs (`tune_runs`, else `runs`)."""
    from simlm_cli.eval.metrics import evaluate, parse_metric
    from simlm_cli.io.qrels import read_qrels

    metric = parse_metric(config.metric)
    qrels = read_qrels(config.tune_on, config.qrels_format)
    paths = config.tune_runs or config.runs
    norm = config.norm or Norm.minmax
    units: dict[str, tuple[list[str], np.ndarray]] = {}
    depths: list[int] = []
    for qid, blocks in iter_cut(paths, config.run_format, config.depth, depths):
        if qid in qrels.judgments:  # only judged queries are kept, so memory follows the tuning set
            units[qid] = unit_scores(blocks, config.method, norm, config.rrf_k)
    if not units:
        raise SimlmError(f"--tune-on {config.tune_on}: no query judged there is in {', '.join(paths)}")
    judged = {qid: qrels.judgments[qid] for qid in units}
    grid = grid or grid_points(len(paths), config.grid_step or default_step(len(paths)))
    results = []
    for weights in grid:
        vector = np.asarray(weights, dtype=np.float64)
        run = {}
        for qid, (docids, matrix) in units.items():
            ids, scores = top_k(docids, vector @ matrix, config.k)
            run[qid] = dict(zip(ids, scores))
        means, _ = evaluate(judged, run, [metric], config.relevance_level)
        results.append((weights, means[metric.name]))
    best = best_weights(results)
    return TuneResult(weights=list(best[0]), value=best[1], queries=len(units), grid=results, depths=depths)


# -- the command --------------------------------------------------------------------------------------------------
def run_fuse(config: FuseConfig) -> dict:
    """Fuse (tuning first when asked), write the run; returns a summary (weights, queries, report path)."""
    from simlm_cli.console import info
    from simlm_cli.io.runs import write_run

    config = check_config(config)
    inputs = [*config.runs, *(config.tune_runs or []), config.tune_on]
    for output in (config.output, report_path(config)):
        check_output_file(output, inputs)  # before reading a run
    tuned = None
    if config.tune_on is not None:
        tuned = tune_weights(config)
        render_grid(tuned, config.tune_runs or config.runs, config.metric)
        weights = tuned.weights
        info(f"tuned weights {_show(weights)}: {config.metric} {tuned.value:.4f} on {tuned.queries} queries")
    else:
        weights = config.weights or [1.0] * len(config.runs)
    depths: list[int] = []
    count = write_run(config.output, fuse_rankings(config, weights, depths), config.output_format, config.tag)
    if tuned is not None and config.method is FuseMethod.interpolate and tuned.depths != depths:
        # Min-max and z-score depend on how deep a run goes (its minimum, its mean), so weights tuned on runs of
        # one depth are not quite the weights for runs of another.
        info(
            f"note: the tuning runs hold up to {_show(tuned.depths)} documents per query, the fused runs up to "
            f"{_show(depths)}; normalised scores depend on depth (--depth N reads every run to the same depth)"
        )
    report = report_path(config)
    if report is not None:
        write_report(report, config, weights, tuned)
    where = config.output or "stdout"
    info(f"fused {len(config.runs)} runs ({_describe(config)}, weights {_show(weights)}): {count} queries -> {where}")
    return {"weights": list(weights), "queries": count, "report": report}


def _show(weights: Sequence[float]) -> str:
    return "[" + ", ".join(f"{w:g}" for w in weights) + "]"


def _describe(config: FuseConfig) -> str:
    if config.method is FuseMethod.rrf:
        return f"rrf, k={config.rrf_k:g}"
    return f"interpolate, {(config.norm or Norm.minmax).value}"
