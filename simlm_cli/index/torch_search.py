"""Exact inner-product search of a flat index's vectors with torch (`mm` + `topk`), on a GPU or the CPU, in
shards of rows: what the SimLM authors search with, and available wherever CUDA torch is (faiss-gpu is not).

The results are faiss's flat search's: the same top k by score, and at equal scores the higher row first (the
order faiss gives the rows it returns). Where equal scores straddle the k-th place faiss keeps some of them
(which ones depends on its heap); this search keeps the highest rows, so that its ranking is one total order,
score descending then row descending, and does not depend on the shard size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

QUERY_BLOCK = 1024  # queries scored together (simlm search sends 1024 at a time, mine --index 256)
CPU_SCORE_BYTES = 256 << 20  # the CPU's scores matrix per shard: 1024 queries x 65,536 rows of float32
CUDA_VECTOR_SHARE = 0.4  # of the device's free memory: the index's vectors stay there if they fit in it
CUDA_SCORE_SHARE = 0.2  # of the device's free memory: one shard's scores (and their comparison masks)
SCORE_COPIES = 3  # the scores matrix, a mask of it and top-k's work space


def shard_rows_for(count: int, dim: int, device_type: str, free_bytes: int | None = None) -> int:
    """Rows per shard: on the CPU as many as keep a block's scores within CPU_SCORE_BYTES; on CUDA as many as the
    device's free memory holds (scores within CUDA_SCORE_SHARE, and the shard's own vectors when the whole index
    cannot stay on the device)."""
    if device_type != "cuda" or free_bytes is None:
        return max(1, min(count, CPU_SCORE_BYTES // (4 * QUERY_BLOCK)))
    rows = int(free_bytes * CUDA_SCORE_SHARE) // (4 * QUERY_BLOCK * SCORE_COPIES)
    if not fits_on_device(count, dim, free_bytes):
        rows = min(rows, int(free_bytes * CUDA_VECTOR_SHARE) // (4 * dim))
    return max(1, min(count, rows))


def fits_on_device(count: int, dim: int, free_bytes: int) -> bool:
    return 4 * count * dim <= free_bytes * CUDA_VECTOR_SHARE


class TorchFlatSearch:
    """Top-k inner products of queries against `vectors` (rows x dim, float32; a view of the faiss index's own
    storage, not a copy), shard by shard on `device`. On CUDA the shards are copied to the device once when the
    whole index fits its free memory (CUDA_VECTOR_SHARE), else each query block copies them in turn."""

    def __init__(self, vectors: np.ndarray, device: str, shard_rows: int | None = None):
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.count, self.dim = vectors.shape
        host = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        cuda = self.device.type == "cuda"
        free = torch.cuda.mem_get_info(self.device)[0] if cuda else None
        self.shard_rows = shard_rows or shard_rows_for(self.count, self.dim, self.device.type, free)
        self.resident = not cuda or fits_on_device(self.count, self.dim, free)
        self.shards = [
            (start, host[start : start + self.shard_rows].to(self.device) if self.resident else host[start : start + self.shard_rows])
            for start in range(0, self.count, self.shard_rows)
        ]  # fmt: skip

    def describe(self) -> str:
        where = "kept on the device" if self.resident else "copied per query block"
        return f"torch on {self.device}, exact, {len(self.shards)} shard(s) of <= {self.shard_rows:,} rows {where}"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (queries x min(k, count)), best first."""
        torch = self._torch
        k = min(k, self.count)
        found = [self._search_block(block, k) for block in _blocks(np.ascontiguousarray(queries, dtype=np.float32))]
        if not found:
            return np.empty((0, k), dtype=np.float32), np.empty((0, k), dtype=np.int64)
        scores, rows = (torch.cat(parts).cpu().numpy() for parts in zip(*found))
        return scores, rows

    def _search_block(self, queries: np.ndarray, k: int) -> tuple[Any, Any]:
        torch = self._torch
        q = torch.from_numpy(queries).to(self.device)
        best = None
        with torch.inference_mode(), _full_fp32(torch):
            for start, shard in self.shards:
                scores = torch.mm(q, shard.to(self.device, non_blocking=True).T)
                values, rows = shard_top(scores, k)
                found = (values, rows + start)
                best = found if best is None else merge_top(best, found, k)
        return best


def _blocks(queries: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(queries), QUERY_BLOCK):
        yield queries[start : start + QUERY_BLOCK]


@contextlib.contextmanager
def _full_fp32(torch: Any) -> Iterator[None]:
    """Scores in full float32 (no TF32 on CUDA, whatever a caller set), as faiss computes them."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def ranked(values: Any, rows: Any) -> tuple[Any, Any]:
    """Each query's candidates in the search's total order: score descending, then row descending."""
    import torch

    by_row = torch.argsort(rows, dim=1, descending=True)
    values, rows = values.gather(1, by_row), rows.gather(1, by_row)
    by_score = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, by_score), rows.gather(1, by_score)


def shard_top(scores: Any, k: int) -> tuple[Any, Any]:
    """The top min(k, columns) of each row of `scores` (queries x a shard's rows, in row order) in the total order.

    `topk` finds the k-th score exactly but, among scores equal to it, keeps an unspecified subset: where more
    than k scores reach the k-th one, those queries take every higher score and then the last (highest-row) equal
    ones."""
    import torch

    kk = min(k, scores.shape[1])
    values, cols = torch.topk(scores, kk, dim=1)
    kth = values[:, -1:]
    ambiguous = ((scores >= kth).sum(1) > kk).nonzero().squeeze(1)
    if len(ambiguous):
        s, t = scores[ambiguous], kth[ambiguous]
        above, equal = s > t, s == t
        wanted = kk - above.sum(1, keepdim=True)
        equal_from_here = equal.flip(1).cumsum(1).flip(1)  # equal scores at this column or a later one
        keep = above | (equal & (equal_from_here <= wanted))
        cols[ambiguous] = keep.nonzero()[:, 1].view(-1, kk)
        values[ambiguous] = s.gather(1, cols[ambiguous])
    return ranked(values, cols)


def merge_top(a: tuple[Any, Any], b: tuple[Any, Any], k: int) -> tuple[Any, Any]:
    """The top k of two shards' top k (rows already global), in the total order."""
    import torch

    values, rows = ranked(torch.cat([a[0], b[0]], 1), torch.cat([a[1], b[1]], 1))
    return values[:, :k], rows[:, :k]
