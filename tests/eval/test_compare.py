"""simlm_cli.eval.compare against computations that share none of its code: scipy's permutation test and bootstrap
interval on the same per-query vectors, exact enumerations of every sign flip and every bootstrap sample for small n,
a normal approximation and a t-interval for large n, and Holm's correction worked by hand."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from scipy import stats

from simlm_cli.eval.compare import compare, compare_runs, holm, paired_bootstrap, paired_randomization


def pair(n: int, shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-query scores in [0, 1] of a baseline and of a run better by about `shift`, with ties at 0 and 1."""
    rng = np.random.default_rng(seed)
    base = rng.random(n)
    return base, np.clip(base + rng.normal(shift, 0.2, n), 0.0, 1.0)


def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y - x, axis=axis)


def monte_carlo_bound(p: float, resamples: int) -> float:
    """Five standard errors of a Monte Carlo p-value, two such estimates apart."""
    return 5 * math.sqrt(2 * max(p, 1 / resamples) * (1 - p) / resamples) + 2 / resamples


# -- randomization test ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, shift", [(8, 0.1), (10, 0.3), (12, 0.0)])
def test_randomization_is_exact_for_small_n(n: int, shift: float) -> None:
    """2^n <= resamples: every sign flip, as an itertools enumeration and scipy's exact test count them."""
    base, run = pair(n, shift, seed=n)
    d = run - base
    flips = [abs(np.dot(signs, d)) for signs in itertools.product((1, -1), repeat=n)]
    by_hand = sum(f >= abs(d.sum()) - 1e-12 for f in flips) / 2**n
    scipy_p = stats.permutation_test(
        (base, run), mean_difference, permutation_type="samples", n_resamples=np.inf, vectorized=True
    ).pvalue
    ours = paired_randomization(base, run, resamples=10_000)
    assert ours == pytest.approx(by_hand, abs=1e-12)
    assert ours == pytest.approx(scipy_p, abs=1e-12)


def test_randomization_matches_scipy_for_300_queries() -> None:
    base, run = pair(300, 0.025, seed=1)
    scipy_p = stats.permutation_test(
        (base, run), mean_difference, permutation_type="samples", n_resamples=20_000, vectorized=True, rng=7
    ).pvalue
    ours = paired_randomization(base, run, resamples=20_000)
    assert 0.005 < scipy_p < 0.5, scipy_p  # a p-value where sampling error can show
    assert abs(ours - scipy_p) < monte_carlo_bound(scipy_p, 20_000)


def test_randomization_ties_count_and_zero_differences_give_one() -> None:
    assert paired_randomization(np.zeros(5), np.zeros(5)) == 1.0
    assert paired_randomization(np.zeros(50), np.zeros(50)) == 1.0
    # Every query better by the same amount: only the two all-same flips reach |mean|, exactly.
    assert paired_randomization(np.zeros(6), np.full(6, 0.1)) == pytest.approx(2 / 64)


# -- bootstrap -------------------------------------------------------------------------------------------------
def test_bootstrap_interval_matches_scipy_and_a_t_interval() -> None:
    base, run = pair(300, 0.02, seed=2)
    d = run - base
    se = d.std(ddof=1) / math.sqrt(d.size)
    low, high = paired_bootstrap(base, run, resamples=10_000).ci95
    theirs = stats.bootstrap(
        (base, run), mean_difference, paired=True, vectorized=True, method="percentile", n_resamples=10_000, rng=3
    ).confidence_interval
    # The 2.5% quantile of 10,000 resamples has a standard error near 0.03 se, 0.04 se between two such: 0.2 se is 5.
    assert low == pytest.approx(theirs.low, abs=0.2 * se)
    assert high == pytest.approx(theirs.high, abs=0.2 * se)
    t = stats.t.ppf(0.975, d.size - 1)
    assert low == pytest.approx(d.mean() - t * se, abs=0.2 * se)
    assert high == pytest.approx(d.mean() + t * se, abs=0.2 * se)
    assert low < d.mean() < high


@pytest.mark.parametrize("values", [[0.3, -0.1, 0.2, 0.05, 0.4], [0.1, 0.1, -0.2, 0.0, 0.3]])
def test_bootstrap_p_matches_the_exact_bootstrap_distribution(values: list[float]) -> None:
    """n = 5: all 5^5 equally likely samples of the mean-0 shifted differences, counted exactly."""
    d = np.array(values)
    shifted = d - d.mean()
    samples = np.array(list(itertools.product(range(5), repeat=5)))
    exact = np.mean(np.abs(shifted[samples].mean(axis=1)) >= abs(d.mean()) - 1e-12)
    ours = paired_bootstrap(np.zeros(5), d, resamples=200_000).p_value
    assert ours == pytest.approx(exact, abs=monte_carlo_bound(exact, 200_000))


def test_bootstrap_p_agrees_with_the_normal_approximation_for_300_queries() -> None:
    """For large n the bootstrap null of the mean is close to N(0, sd^2 / n)."""
    base, run = pair(300, 0.025, seed=1)
    d = run - base
    z = abs(d.mean()) / (d.std(ddof=0) / math.sqrt(d.size))
    normal = 2 * stats.norm.sf(z)
    assert 0.005 < normal < 0.5, normal
    assert paired_bootstrap(base, run).p_value == pytest.approx(normal, rel=0.15)


def test_bootstrap_of_identical_runs() -> None:
    result = paired_bootstrap(np.full(40, 0.5), np.full(40, 0.5))
    assert result.ci95 == (0.0, 0.0) and result.p_value == 1.0


# -- both: determinism, speed, shapes -------------------------------------------------------------------------
def test_same_seed_same_figures_other_seed_close() -> None:
    base, run = pair(300, 0.02, seed=4)
    first, again = compare(base, run, 5_000, seed=1), compare(base, run, 5_000, seed=1)
    assert first == again
    other = compare(base, run, 5_000, seed=2)
    assert other != first
    p = first["p_randomization"]
    assert other["p_randomization"] == pytest.approx(p, abs=monte_carlo_bound(p, 5_000))
    assert other["ci95"] == pytest.approx(first["ci95"], abs=0.003)


def test_300_queries_10000_resamples_well_under_a_second() -> None:
    base, run = pair(300, 0.02, seed=5)
    start = time.process_time()
    compare(base, run, resamples=10_000)
    assert time.process_time() - start < 1.0  # about 0.2 s of CPU on a 2-core machine


def test_many_queries_are_chunked_to_the_same_figures_as_one_pass() -> None:
    """7,000 queries x 10,000 resamples would be 560 MB at once: chunks must not change what is drawn."""
    import simlm_cli.eval.compare as module

    base, run = pair(701, 0.01, seed=6)
    whole = compare(base, run, 2_000)
    saved = module._CHUNK_ELEMENTS
    module._CHUNK_ELEMENTS = 701 * 3  # three resamples a chunk (an odd count of draws)
    try:
        chunked = compare(base, run, 2_000)
    finally:
        module._CHUNK_ELEMENTS = saved
    assert chunked == whole


def test_unpaired_vectors_are_refused() -> None:
    with pytest.raises(ValueError, match="paired scores"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="paired scores"):
        paired_randomization(np.zeros(0), np.zeros(0))


# -- Holm ------------------------------------------------------------------------------------------------------
def test_holm_by_hand() -> None:
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.3]) == pytest.approx([0.6, 0.6])  # 0.3 x 2 = 0.6, then max(0.6, 0.5)
    assert holm([0.9, 0.8, 0.01]) == pytest.approx([1.0, 1.0, 0.03])  # capped at 1
    assert holm([0.2]) == [0.2]
    assert holm([]) == []


def test_compare_runs_corrects_over_every_run_and_metric() -> None:
    base, better = pair(200, 0.05, seed=8)
    same = base.copy()
    scores = {
        "base.trec": {"ndcg@10": base, "mrr@10": base},
        "better.trec": {"ndcg@10": better, "mrr@10": base + 0.0},
        "same.trec": {"ndcg@10": same, "mrr@10": same},
    }
    found = compare_runs(scores, "base.trec", resamples=2_000, seed=3)
    assert [(c.run, c.metric) for c in found] == [
        ("better.trec", "ndcg@10"),
        ("better.trec", "mrr@10"),
        ("same.trec", "ndcg@10"),
        ("same.trec", "mrr@10"),
    ]
    assert all(c.baseline == "base.trec" and c.queries == 200 for c in found)
    assert [c.p_randomization_holm for c in found] == pytest.approx(holm([c.p_randomization for c in found]))
    assert [c.p_bootstrap_holm for c in found] == pytest.approx(holm([c.p_bootstrap for c in found]))
    first = found[0]
    assert first.difference == pytest.approx(np.mean(better - base))
    assert first.p_randomization == paired_randomization(base, better, 2_000, 3)  # each comparison seeded alike
    assert first.p_randomization_holm == pytest.approx(min(1.0, 4 * first.p_randomization))  # smallest of 4
    assert found[3].p_randomization == 1.0 and found[3].ci95 == (0.0, 0.0)
