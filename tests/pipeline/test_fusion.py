"""The fusion arithmetic alone (no file is read): each function against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simlm_cli.io.runs import RunBlock
from simlm_cli.pipeline.fuse_options import FuseMethod, Norm
from simlm_cli.pipeline.fusion import best_weights, default_step, grid_points, normalise, top_k, unit_scores


def test_normalise_by_hand() -> None:
    scores = np.array([4.0, 2.0, 1.0])
    np.testing.assert_allclose(normalise(scores, Norm.minmax), [1.0, 1 / 3, 0.0])
    mean, std = 7 / 3, math.sqrt(((4 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (1 - 7 / 3) ** 2) / 3)  # population std
    np.testing.assert_allclose(normalise(scores, Norm.zscore), [(s - mean) / std for s in (4, 2, 1)])
    assert normalise(scores, Norm.none) is scores


@pytest.mark.parametrize("norm", [Norm.minmax, Norm.zscore])
def test_a_constant_ranking_says_nothing(norm: Norm) -> None:
    np.testing.assert_array_equal(normalise(np.array([5.0, 5.0]), norm), [0.0, 0.0])
    np.testing.assert_array_equal(normalise(np.array([3.0]), norm), [0.0])


A = RunBlock("q", ["a", "b", "c"], [3.0, 2.0, 1.0])
B = RunBlock("q", ["c", "d"], [10.0, 4.0])


def test_rrf_unit_scores_by_hand() -> None:
    docids, matrix = unit_scores([A, B], FuseMethod.rrf, Norm.minmax, rrf_k=60.0)
    assert docids == ["a", "b", "c", "d"]  # first appearance: run A's ranking, then B's new documents
    np.testing.assert_allclose(matrix[0], [1 / 61, 1 / 62, 1 / 63, 0.0])  # d: not retrieved by A, adds 0
    np.testing.assert_allclose(matrix[1], [0.0, 0.0, 1 / 61, 1 / 62])


def test_minmax_unit_scores_fill_missing_documents_with_the_minimum() -> None:
    docids, matrix = unit_scores([A, B], FuseMethod.interpolate, Norm.minmax, rrf_k=60.0)
    np.testing.assert_allclose(matrix, [[1.0, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    fused = np.array([0.25, 0.75]) @ matrix
    np.testing.assert_allclose(fused, [0.25, 0.125, 0.75, 0.0])


def test_zscore_fills_missing_documents_with_the_minimum_not_the_mean() -> None:
    _, matrix = unit_scores([A, B], FuseMethod.interpolate, Norm.zscore, rrf_k=60.0)
    std = math.sqrt(2 / 3)  # of 3, 2, 1 (mean 2)
    np.testing.assert_allclose(matrix[0], [1 / std, 0.0, -1 / std, -1 / std])
    np.testing.assert_allclose(matrix[1], [-1.0, -1.0, 1.0, -1.0])  # 10, 4: mean 7, std 3


def test_ranks_only_and_absent_runs() -> None:
    ranks_only = RunBlock("q", ["x", "y", "z"], None)  # MS MARCO: the score is -rank
    docids, matrix = unit_scores([ranks_only, None], FuseMethod.interpolate, Norm.none, rrf_k=60.0)
    assert docids == ["x", "y", "z"]
    np.testing.assert_array_equal(matrix, [[-1.0, -2.0, -3.0], [0.0, 0.0, 0.0]])  # no block: nothing added


def test_top_k_keeps_ties_in_order_of_first_appearance() -> None:
    ids, scores = top_k(["a", "b", "c", "d"], np.array([0.5, 0.9, 0.5, 0.1]), 3)
    assert ids == ["b", "a", "c"] and scores == [0.9, 0.5, 0.5]


def test_grid_and_default_steps() -> None:
    assert grid_points(2, 0.5) == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    assert grid_points(3, 0.5) == [[0.0, 0.0, 1.0], [0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5],
                                   [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]  # fmt: skip
    assert [len(grid_points(n, default_step(n))) for n in (2, 3, 4, 5)] == [21, 66, 56, 126]


def test_best_weights_prefers_the_vector_nearest_equal_weights_then_the_first() -> None:
    results = [([0.0, 1.0], 0.7), ([0.25, 0.75], 0.9), ([0.75, 0.25], 0.9), ([1.0, 0.0], 0.9 - 1e-13)]
    assert best_weights(results) == ([0.25, 0.75], 0.9)  # 0.25/0.75 and 0.75/0.25 are as near: the first wins
    assert best_weights([([0.0, 1.0], 0.5), ([0.5, 0.5], 0.4)]) == ([0.0, 1.0], 0.5)
