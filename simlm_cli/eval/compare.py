"""Paired comparison of two runs' per-query scores: a bootstrap interval of the mean difference, two-sided p-values
from a paired randomization (sign-flip) test and a paired bootstrap test, and Holm's correction over comparisons.

Pure numpy, vectorised over resamples (in chunks that bound memory for 7,000-query collections), seeded so that a
comparison gives the same figures on every run. The tests check these figures against scipy and exact enumerations.

- Randomization test (Fisher; Smucker, Allan & Carterette 2007): under H0 the sign of each query's difference is
  arbitrary; p = share of sign flips whose |mean| reaches the observed |mean|. When 2^n <= resamples every flip is
  enumerated (exact p, as scipy.stats.permutation_test does); otherwise p = (hits + 1) / (resamples + 1).
- Bootstrap test (Efron & Tibshirani 1993, 16.4; Sakai 2006 without studentizing): the differences shifted to mean 0
  are the null population; p = share of resampled means of the shifted differences whose |mean| reaches the
  observed |mean|, as (hits + 1) / (resamples + 1). It reuses the interval's resamples.
- Interval: the percentile interval of the resampled mean differences (queries drawn with replacement, pairs kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from simlm_cli.eval import DEFAULT_RESAMPLES, DEFAULT_SEED

CI_METHOD = "paired bootstrap percentile"
TESTS = ("paired randomization (sign flip)", "paired bootstrap (shifted to mean 0)")
# A resampled statistic that equals the observed one up to rounding counts as reaching it.
_RELATIVE_TOLERANCE = 1e-9
_CHUNK_ELEMENTS = 1 << 22  # resamples x queries per chunk: 32 MiB of float64


@dataclass(frozen=True)
class Bootstrap:
    ci95: tuple[float, float]
    p_value: float


@dataclass(frozen=True)
class Comparison:
    """One run against the baseline on one metric; p-values before and after Holm's correction."""

    baseline: str
    run: str
    metric: str
    queries: int
    baseline_mean: float
    run_mean: float
    difference: float
    ci95: tuple[float, float]
    p_randomization: float
    p_bootstrap: float
    p_randomization_holm: float = float("nan")
    p_bootstrap_holm: float = float("nan")


def _differences(baseline: np.ndarray, run: np.ndarray) -> np.ndarray:
    baseline, run = np.asarray(baseline, dtype=np.float64), np.asarray(run, dtype=np.float64)
    if baseline.shape != run.shape or baseline.ndim != 1 or baseline.size == 0:
        raise ValueError(
            f"paired scores must be two 1-d arrays of one non-zero length, got {baseline.shape} and {run.shape}"
        )
    return run - baseline


def _chunks(resamples: int, n: int) -> Iterator[int]:
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, resamples, rows):
        yield min(rows, resamples - start)


def _reaches(statistics: np.ndarray, observed: float, scale: float) -> int:
    """How many |statistics| reach |observed| (ties included, up to rounding relative to `scale`)."""
    return int(np.count_nonzero(np.abs(statistics) >= abs(observed) - _RELATIVE_TOLERANCE * scale))


def paired_randomization(
    baseline: np.ndarray, run: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> float:
    """Two-sided p-value of the paired randomization (sign-flip) test of mean(run - baseline) = 0."""
    d = _differences(baseline, run)
    n, total, scale = d.size, d.sum(), np.abs(d).sum()
    # A flip of the queries in mask M changes the sum to total - 2 * sum(d[M]).
    if 2**n <= resamples:
        masks = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        return _reaches(total - 2 * (masks @ d), total, scale) / 2**n
    rng, hits = np.random.default_rng(seed), 0
    for rows in _chunks(resamples, n):
        masks = rng.random((rows, n)) < 0.5  # one draw per query, so chunking never changes the stream
        hits += _reaches(total - 2 * (masks @ d), total, scale)
    return (hits + 1) / (resamples + 1)


def paired_bootstrap(
    baseline: np.ndarray, run: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> Bootstrap:
    """95% percentile interval of mean(run - baseline) and the two-sided p-value of the paired bootstrap test."""
    d = _differences(baseline, run)
    n, total, scale = d.size, d.sum(), np.abs(d).sum()
    rng, sums = np.random.default_rng(seed), []
    for rows in _chunks(resamples, n):
        sums.append(d[rng.integers(0, n, size=(rows, n))].sum(axis=1))
    resampled = np.concatenate(sums)
    # The shifted population d - mean(d) resampled with the same draws has sums resampled - total.
    hits = _reaches(resampled - total, total, scale)
    low, high = np.quantile(resampled / n, [0.025, 0.975])
    return Bootstrap((float(low), float(high)), (hits + 1) / (resamples + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (the family is all of them)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def compare(
    baseline: np.ndarray, run: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> dict[str, object]:
    """Means, mean difference, interval and both p-values of one paired comparison (no correction)."""
    d = _differences(baseline, run)
    boot = paired_bootstrap(baseline, run, resamples, seed)
    return {
        "queries": int(d.size),
        "baseline_mean": float(np.mean(baseline)),
        "run_mean": float(np.mean(run)),
        "difference": float(d.mean()),
        "ci95": boot.ci95,
        "p_randomization": paired_randomization(baseline, run, resamples, seed),
        "p_bootstrap": boot.p_value,
    }


def compare_runs(
    scores: dict[str, dict[str, np.ndarray]],
    baseline: str,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[Comparison]:
    """Every other run against `baseline` on every metric, Holm-corrected over all of them per test.

    `scores[run][metric]` holds per-query values in one query order shared by all runs. Each comparison draws from
    its own generator seeded with `seed`, so adding a run changes no other comparison's figures (Holm's aside)."""
    found = [
        Comparison(baseline, name, metric, **compare(scores[baseline][metric], values, resamples, seed))
        for name, by_metric in scores.items()
        if name != baseline
        for metric, values in by_metric.items()
    ]
    rand = holm([c.p_randomization for c in found])
    boot = holm([c.p_bootstrap for c in found])
    return [replace(c, p_randomization_holm=r, p_bootstrap_holm=b) for c, r, b in zip(found, rand, boot, strict=True)]
