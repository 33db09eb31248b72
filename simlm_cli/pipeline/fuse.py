"""`simlm fuse`: two or more runs -> one run, by reciprocal-rank fusion or score interpolation, with weights given
or tuned on training queries.

Methods (for one query; `rank` is a document's 1-based position in its run after ordering by score, best first,
as `iter_run_blocks` orders a block and trec_eval ranks it; MS MARCO runs carry ranks only, and their score is
-rank):
- `rrf`: score = sum over runs of w_i / (rrf_k + rank_i); a run that did not retrieve the document adds 0.
- `interpolate`: score = sum over runs of w_i * norm_i(score_i), normalised per query and per run:
  - `minmax`: (s - min) / (max - min), so the run's best document gets 1 and its last 0;
  - `zscore`: (s - mean) / std over the documents the run returned for the query;
  - `none`: the raw scores.
  A document that a run did not retrieve gets that run's normalised *minimum* for the query (0 with min-max): the
  run ranked it below everything it returned, so it can at best tie with the run's last document. A run that
  returned equal scores for every document of a query (or a single document) says nothing about their order:
  min-max and z-score give all of them 0, and so the missing documents too. A query that a run does not hold at
  all gets nothing from that run.
Both methods are linear in the weights: each run's per-query contribution is computed once ("unit" scores) and a
weight vector only scales and sums them, which is what makes the tuning grid cheap. Scaling every weight by the
same positive factor does not change the ranking; the default weights are 1 each (the classic RRF score).
Ties in the fused score keep the order in which documents first appear (run 1's ranking, then run 2's new
documents, ...).

Tuning (`tune_weights`): the training runs (one per run to fuse, same order) are fused for every weight vector of a
grid over the simplex (2 runs: w = 0.00, 0.05, ..., 1.00 for the first and 1 - w for the second; more runs: a
coarser grid, `grid_points`), each fused run is cut to the output depth and scored with `simlm_cli.eval.metrics`
on the queries judged in the tuning qrels that the training runs hold; the best wins (ties: the vector nearest to
equal weights, then the first in grid order). No other qrels are read: the command has no way to name them.

Reading: the runs are streamed in lockstep with `iter_run_blocks`, one query's block of each run at a time.
Runs written by `simlm search` over the same queries list them in the same order, so a query is fused as soon as
every run has yielded its block and memory holds a few blocks. Runs in different orders are still correct: a
block waits in memory until its query's block has come from every run (or a run has ended without it), so the
worst case (opposite orders) holds whole runs as blocks, still well under reading them whole into dicts; this
keeps the common case small without asking users to sort. Each run must keep a query's lines together, as
`iter_run_blocks` requires (its error names the line otherwise). Measured on 2 runs of 7,000 queries x 1,000
documents (250 MB each, min-max): peak RSS 58 MiB in the same order (35 s on a busy 2-core machine), 444 MiB
with the second run's queries shuffled (34 s); reading both whole with `read_run` takes 1.6 GiB.

Why not `pyserini.fusion` (1.6, installed): it offers RRF (no weights), 2-run interpolation of raw scores,
average, and min-max "normalize" (no weights; a query whose scores are all equal gets 1s), over whole runs read
into pandas frames; no z-score, no per-run weights after normalisation, no tuning, TREC runs only. Its import
alone is light (pandas, ~0.5 s here, no JVM), but wrapping it would still mean reading both runs whole and
re-doing the parsing errors, MS MARCO runs and weights around it. The arithmetic here is a few numpy lines per
query over this package's own streaming reader (one-line errors with file and line, MS MARCO input).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simlm_cli.errors import SimlmError
from simlm_cli.io.files import check_output_file, is_stdout
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.runs import RunBlock, RunFormat, iter_run_blocks
from simlm_cli.pipeline.fuse_options import FUSE_TAG, FuseMethod, Norm

TWO_RUN_STEP = 0.05  # the 2-run grid: 21 points
EPSILON = 1e-12  # metric values closer than this are ties
MAX_GRID = 5000  # weight vectors a --grid-step may ask for (each is one evaluation of the tuning queries)


@dataclass
class FuseConfig:
    runs: list[str]
    output: str | None = None
    method: FuseMethod = FuseMethod.rrf
    norm: Norm | None = None  # interpolate: None means minmax; rrf: must stay None
    rrf_k: float = 60.0
    weights: list[float] | None = None  # None: 1 each, or tuned
    k: int = 1000
    depth: int | None = None  # documents read per run and query (the top); None: all
    run_format: RunFormat = RunFormat.auto  # of the inputs
    output_format: RunFormat = RunFormat.auto
    tag: str = FUSE_TAG
    tune_on: str | None = None
    tune_runs: list[str] | None = None  # None: tune on the runs to fuse (their judged queries)
    metric: str = "ndcg@10"
    relevance_level: int = 1
    qrels_format: QrelsFormat = QrelsFormat.auto
    grid_step: float | None = None  # None: TWO_RUN_STEP for 2 runs, coarser for more (`default_step`)
    tune_report: str | None = None  # None: OUTPUT.fuse.json when tuning into a file


@dataclass
class TuneResult:
    weights: list[float]
    value: float
    queries: int
    grid: list[tuple[list[float], float]] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)  # the most documents a tuning run held for one query


# -- checks -------------------------------------------------------------------------------------------------------
def check_config(config: FuseConfig) -> None:
    """Errors that need no file: one line each, before anything is read."""
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

        config.metric = parse_metric(config.metric).name  # lower case: the report's key, as evaluate's JSON


# -- one query ----------------------------------------------------------------------------------------------------
def _normalise(scores: np.ndarray, norm: Norm) -> np.ndarray:
    if norm is Norm.none:
        return scores
    if norm is Norm.minmax:
        low, span = scores.min(), scores.max() - scores.min()
        return (scores - low) / span if span > 0 else np.zeros_like(scores)
    std = scores.std()
    return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)


def unit_scores(
    blocks: Sequence[RunBlock | None], method: FuseMethod, norm: Norm, rrf_k: float
) -> tuple[list[str], np.ndarray]:
    """One query's documents (the union of the runs', in order of first appearance) and a (runs x documents)
    matrix of each run's contribution at weight 1; the fused scores are `weights @ matrix`."""
    index: dict[str, int] = {}
    for block in blocks:
        if block is not None:
            for docid in block.docids:
                index.setdefault(docid, len(index))
    matrix = np.zeros((len(blocks), len(index)), dtype=np.float64)
    for row, block in enumerate(blocks):
        if block is None:
            continue  # the run does not hold the query: it adds nothing
        positions = np.fromiter((index[d] for d in block.docids), dtype=np.int64, count=len(block.docids))
        ranks = np.arange(1, len(block.docids) + 1, dtype=np.float64)
        if method is FuseMethod.rrf:
            matrix[row, positions] = 1.0 / (rrf_k + ranks)
            continue
        raw = np.asarray(block.scores, dtype=np.float64) if block.scores is not None else -ranks  # MS MARCO: -rank
        normalised = _normalise(raw, norm)
        # Missing documents get the run's minimum, for z-score too: filling them with 0 (the mean) would put a
        # document the run did not retrieve above the half of its ranking that scored below the mean, i.e.
        # reward absence. The minimum says what the run does say: it ranked the document below all it returned.
        matrix[row, :] = normalised.min()
        matrix[row, positions] = normalised
    return list(index), matrix


def top_k(docids: list[str], scores: np.ndarray, k: int) -> tuple[list[str], list[float]]:
    """The best k, ties in order of first appearance (a stable sort)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [docids[i] for i in order], scores[order].tolist()


# -- reading runs in lockstep --------------------------------------------------------------------------------------
def iter_aligned(paths: Sequence[str], fmt: RunFormat = RunFormat.auto) -> Iterator[tuple[str, list[RunBlock | None]]]:
    """(qid, one block per run or None where the run lacks the query), streaming the runs side by side.

    A query is yielded once every run has yielded its block or ended; blocks of queries that other runs have not
    reached yet wait in memory (none, when the runs list queries in the same order)."""
    streams: list[Iterator[RunBlock] | None] = [iter_run_blocks(path, fmt) for path in paths]
    waiting: dict[str, list[RunBlock | None]] = {}  # qid -> blocks so far, in order of first appearance

    def complete(blocks: list[RunBlock | None]) -> bool:
        return all(block is not None or stream is None for block, stream in zip(blocks, streams))

    while any(stream is not None for stream in streams):
        for i, stream in enumerate(streams):
            if stream is None:
                continue
            block = next(stream, None)
            if block is None:
                streams[i] = None
                candidates = list(waiting)  # a run ended: any waiting query may now have all it will get
            else:
                block.lines = []  # line numbers serve the reader's errors only; a waiting block need not hold them
                waiting.setdefault(block.qid, [None] * len(paths))[i] = block
                candidates = [block.qid]
            for qid in candidates:
                if complete(waiting[qid]):
                    yield qid, waiting.pop(qid)


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
                scores = block.scores[:depth] if block.scores is not None else None
                blocks[i] = block = RunBlock(block.qid, block.docids[:depth], scores, block.line)
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
def default_step(runs: int) -> float:
    """Grid steps that keep the grid near 100 points or fewer: 21 (2 runs), 66 (3), 56 / 126 (4 / 5), 84+ (6+)."""
    return {2: TWO_RUN_STEP, 3: 0.1, 4: 0.2, 5: 0.2}.get(runs, 0.25 if runs <= 7 else 0.5)


def grid_points(runs: int, step: float) -> list[list[float]]:
    """Every weight vector of non-negative multiples of `step` summing to 1, the first run's weight rising first
    (2 runs: 0.00/1.00, 0.05/0.95, ..., 1.00/0.00)."""
    parts = round(1 / step)
    if parts < 1 or abs(parts * step - 1) > 1e-9:
        raise SimlmError(f"--grid-step {step}: 1 must be a whole number of steps (e.g. 0.05, 0.1, 0.25)")
    points = []
    for cuts in itertools.combinations(range(parts + runs - 1), runs - 1):  # stars and bars
        bounds = (-1, *cuts, parts + runs - 1)
        counts = [bounds[i + 1] - bounds[i] - 1 for i in range(runs)]
        points.append([round(c / parts, 10) for c in counts])
    return points


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
    equal = np.full(len(paths), 1 / len(paths))
    best_value = max(value for _, value in results)
    ties = [(w, v) for w, v in results if v >= best_value - EPSILON]
    best = min(ties, key=lambda item: float(np.linalg.norm(np.asarray(item[0]) - equal)))  # min is stable
    return TuneResult(weights=list(best[0]), value=best[1], queries=len(units), grid=results, depths=depths)


def render_grid(result: TuneResult, names: Sequence[str], metric: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from simlm_cli.console import console

    table = Table(title=f"{metric} on {result.queries} tuning queries")
    for number, name in enumerate(names, 1):
        table.add_column(escape(f"w{number} {Path(name).name}"), justify="right")
    table.add_column(escape(metric), justify="right")
    for weights, value in result.grid:
        best = weights == result.weights
        cells = [f"{w:.2f}" for w in weights] + [f"{value:.4f}"]
        table.add_row(*cells, style="bold green" if best else None)
    console.print(table)


def report_path(config: FuseConfig) -> str | None:
    if config.tune_report:
        return config.tune_report
    if config.tune_on and config.output:
        return f"{config.output}.fuse.json"
    return None


def write_report(path: str, config: FuseConfig, weights: Sequence[float], tuned: TuneResult | None) -> None:
    from simlm_cli.io.files import atomic_output

    report: dict = {
        "runs": list(config.runs),
        "method": config.method.value,
        "norm": (config.norm or Norm.minmax).value if config.method is FuseMethod.interpolate else None,
        "rrf_k": config.rrf_k if config.method is FuseMethod.rrf else None,
        "k": config.k,
        "depth": config.depth,
        "weights": list(weights),
    }
    if tuned is not None:
        report.update(
            tune_on=config.tune_on,
            tune_runs=list(config.tune_runs or config.runs),
            metric=config.metric,
            tuning_queries=tuned.queries,
            best=round(tuned.value, 6),
            grid=[{"weights": w, config.metric: round(v, 6)} for w, v in tuned.grid],
        )
    with atomic_output(path) as handle:
        handle.write(json.dumps(report, indent=2) + "\n")


# -- the command --------------------------------------------------------------------------------------------------
def run_fuse(config: FuseConfig) -> dict:
    """Fuse (tuning first when asked), write the run; returns a summary (weights, queries, report path)."""
    from simlm_cli.console import info
    from simlm_cli.io.runs import write_run

    check_config(config)
    if is_stdout(config.output):  # `-o -`: stdout, as for search and encode (and no `-.fuse.json` report)
        config.output = None
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
