"""The torch search backend (`--search-backend torch`) on the CPU: the same results as faiss's flat search on the
same index, whatever the shard size (several shards, k above a shard's rows, k above the index's rows), with
equal scores in one total order; parts of an index merged alike; refusals for what it cannot search."""

from __future__ import annotations

import numpy as np
import pytest

from simlm_cli.errors import SimlmError
from simlm_cli.index import SearchBackend
from simlm_cli.index.dense import DenseIndex, IndexType, MergedDenseIndex, faiss_module
from simlm_cli.index.torch_search import TorchFlatSearch, shard_rows_for
from simlm_cli.pipeline.indexes import choose_search_backend
from tests.index.test_dense import DIM, build, clustered

SHARD_ROWS = (7, 64, 1000, None)  # 7: k above a shard's rows; 1000: one shard; None: the CPU default
KS = (1, 10, 50, 300, 5000)  # 300 = every row; 5000 > every row


def reference(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The torch backend's definition: score descending, then row descending, the first min(k, rows)."""
    scores = queries @ vectors.T
    rows = np.arange(len(vectors))
    order = np.lexsort((-np.broadcast_to(rows, scores.shape), -scores), axis=1)[:, : min(k, len(vectors))]
    return np.take_along_axis(scores, order, 1), order


def faiss_flat(vectors: np.ndarray):
    index = faiss_module().IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def assert_same_up_to_rounding(
    rows: np.ndarray, expected: np.ndarray, queries: np.ndarray, vectors: np.ndarray
) -> None:
    """The same rows, except where two documents' exact scores are within float32 rounding of each other (torch's
    and faiss's BLAS sum in different orders, so such neighbours may swap)."""
    exact = queries.astype(np.float64) @ vectors.astype(np.float64).T
    q, i = np.nonzero(rows != expected)
    np.testing.assert_allclose(exact[q, rows[q, i]], exact[q, expected[q, i]], atol=1e-6)
    assert len(q) <= 0.01 * rows.size


def test_random_vectors_give_faiss_results_at_every_shard_size() -> None:
    vectors, queries = clustered(300), clustered(40, seed=1)
    index = faiss_flat(vectors)
    for shard_rows in SHARD_ROWS:
        search = TorchFlatSearch(vectors, "cpu", shard_rows)
        assert len(search.shards) == -(-300 // search.shard_rows)
        for k in KS:
            scores, rows = search.search(queries, k)
            expected_scores, expected_rows = index.search(queries, min(k, 300))
            assert rows.shape == (40, min(k, 300)) and rows.dtype == np.int64
            assert_same_up_to_rounding(rows, expected_rows, queries, vectors)
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)


def test_ties_are_one_total_order_and_agree_with_faiss_where_faiss_is_defined() -> None:
    """Small integer vectors: every score is exact in float32 in any summation order, and many are equal."""
    rng = np.random.default_rng(0)
    vectors = rng.integers(-2, 3, (300, 8)).astype(np.float32)
    queries = rng.integers(-2, 3, (25, 8)).astype(np.float32)
    index = faiss_flat(vectors)
    straddled = 0
    for shard_rows in SHARD_ROWS:
        search = TorchFlatSearch(vectors, "cpu", shard_rows)
        for k in KS:
            scores, rows = search.search(queries, k)
            expected_scores, expected_rows = reference(queries, vectors, k)
            np.testing.assert_array_equal(rows, expected_rows, err_msg=f"shard rows {shard_rows}, k {k}")
            np.testing.assert_array_equal(scores, expected_scores)
            faiss_scores, faiss_rows = index.search(queries, min(k, 300))
            np.testing.assert_array_equal(scores, faiss_scores)  # the same scores, always
            # where no equal scores straddle the k-th place, faiss's rows (and their order) are the same too
            all_scores = queries @ vectors.T
            clear = (all_scores >= scores[:, -1:]).sum(1) == scores.shape[1]
            np.testing.assert_array_equal(rows[clear], faiss_rows[clear])
            straddled += int((~clear).sum())
    assert straddled > 0  # the data does exercise ties at the cut-off


def test_a_dense_index_and_its_parts_search_alike_with_either_backend(tmp_path) -> None:
    vectors, queries = clustered(500), clustered(30, seed=2)
    ids = [f"d{i}" for i in range(500)]
    whole = build(tmp_path, "whole", ids, vectors)
    cuts = [0, 40, 260, 500]
    parts = [build(tmp_path, f"p{a}", ids[a:b], vectors[a:b]) for a, b in zip(cuts, cuts[1:])]
    for k in (5, 100, 1000):
        faiss_whole, faiss_merged = whole.search(queries, k), MergedDenseIndex(parts).search(queries, k)
        torch_whole = DenseIndex(tmp_path / "whole")
        torch_whole.use_torch("cpu", shard_rows=33)
        torch_merged = MergedDenseIndex([DenseIndex(tmp_path / f"p{a}") for a in cuts[:-1]])
        assert choose_search_backend(torch_merged, SearchBackend.torch, "cpu", False, 17) is SearchBackend.torch
        for (scores, rows), (expected_scores, expected_rows) in (
            (torch_whole.search(queries, k), faiss_whole),
            (torch_merged.search(queries, k), faiss_merged),
        ):
            assert_same_up_to_rounding(rows, expected_rows, queries, vectors)
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)


def test_auto_is_torch_on_cuda_for_flat_indexes_only(tmp_path) -> None:
    flat = build(tmp_path, "flat", [f"d{i}" for i in range(20)], clustered(20))
    assert choose_search_backend(flat, SearchBackend.auto, "cpu", False, None) is SearchBackend.faiss
    assert flat.torch_search is None
    hnsw = build(tmp_path, "hnsw", [f"d{i}" for i in range(20)], clustered(20), IndexType.hnsw)
    # on CUDA an HNSW index stays with faiss (no CUDA is needed to decide that)
    assert choose_search_backend(hnsw, SearchBackend.auto, "cuda:0", False, None) is SearchBackend.faiss
    assert choose_search_backend(flat, SearchBackend.auto, "cuda:0", True, None) is SearchBackend.faiss  # --gpu


def test_what_the_torch_backend_cannot_do_is_refused(tmp_path) -> None:
    hnsw = build(tmp_path, "hnsw", [f"d{i}" for i in range(20)], clustered(20), IndexType.hnsw)
    with pytest.raises(SimlmError, match=r"--search-backend torch searches flat \(exact\) indexes; .* is hnsw"):
        choose_search_backend(hnsw, SearchBackend.torch, "cpu", False, None)
    flat = build(tmp_path, "flat", [f"d{i}" for i in range(20)], clustered(20))
    with pytest.raises(SimlmError, match="exclude each other"):
        choose_search_backend(flat, SearchBackend.torch, "cpu", True, None)
    with pytest.raises(SimlmError, match="--search-shard-rows applies to --search-backend torch"):
        choose_search_backend(flat, SearchBackend.faiss, "cpu", False, 100)


def test_shard_rows_follow_the_memory_at_hand() -> None:
    assert shard_rows_for(10_000_000, DIM, "cpu") == 65_536  # the CPU's scores block stays at 256 MiB
    assert shard_rows_for(1000, DIM, "cpu") == 1000
    gib = 1 << 30
    # an index that fits on the GPU: shards bounded by the scores' share of free memory only
    assert shard_rows_for(10_000_000, 768, "cuda", 100 * gib) == int(100 * gib * 0.2) // (4 * 1024 * 3)
    # 10M x 768 floats (30.7 GB) do not fit 40% of 8 GiB: each shard's vectors must fit too
    assert shard_rows_for(10_000_000, 768, "cuda", 8 * gib) == min(int(8 * gib * 0.2) // (4 * 1024 * 3),
                                                                   int(8 * gib * 0.4) // (4 * 768))  # fmt: skip
