"""The arithmetic of `simlm fuse`, apart from reading and writing runs: numpy over one query's rankings.

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

The weight grid covers the simplex: 2 runs, w = 0.00, 0.05, ..., 1.00 for the first and 1 - w for the second; more
runs, a coarser grid (`default_step`). Of the vectors with the best metric, the one nearest equal weights wins,
then the first in grid order (`best_weights`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from simlm_cli.errors import SimlmError
from simlm_cli.pipeline.fuse_options import FuseMethod, Norm

if TYPE_CHECKING:
    from simlm_cli.io.runs import RunBlock

TWO_RUN_STEP = 0.05  # the 2-run grid: 21 points
EPSILON = 1e-12  # metric values closer than this are ties


def normalise(scores: np.ndarray, norm: Norm) -> np.ndarray:
    """One run's scores for one query, normalised (see the module docstring); a constant row gives zeros."""
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
        normalised = normalise(raw, norm)
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


def best_weights(results: Sequence[tuple[list[float], float]]) -> tuple[list[float], float]:
    """The (weights, value) with the highest value; of values within EPSILON of it, the weights nearest equal
    weights, then the first in `results`' order."""
    equal = np.full(len(results[0][0]), 1 / len(results[0][0]))
    best_value = max(value for _, value in results)
    ties = [(w, v) for w, v in results if v >= best_value - EPSILON]
    return min(ties, key=lambda item: float(np.linalg.norm(np.asarray(item[0]) - equal)))  # min is stable
