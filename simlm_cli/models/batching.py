"""The length-sorted batch loop of simlm's inference (`BiEncoder.encode_*`, `CrossEncoder.score`: `run_batches`)
and the prefetching that keeps a device busy while the CPU tokenizes the next chunk.

Batches are cut from inputs sorted by length, longest first, so that texts of similar length are padded
together. A batch holds `batch_size` texts, or, with a token budget, as many texts as fit `max_tokens` padded
tokens (rows x the batch's longest text): short texts then travel in larger batches, long ones in smaller.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from simlm_cli.device import CUDA_BATCH_TOKENS

if TYPE_CHECKING:
    from simlm_cli.device import Runtime

Item = TypeVar("Item")
Result = TypeVar("Result")
PREFETCH = 1  # chunks tokenized and padded ahead of the model by `simlm encode`, on a background thread


def default_batching(device_type: str, batch_size: int | None, max_tokens: int | None) -> tuple[int | None, int | None]:
    """(batch_size, max_tokens) with the defaults filled in where neither was asked for: 16 texts on the CPU (small
    batches are fastest there), a token budget of CUDA_BATCH_TOKENS on CUDA."""
    if batch_size is None and max_tokens is None:
        return (None, CUDA_BATCH_TOKENS) if device_type == "cuda" else (16, None)
    return batch_size, max_tokens


def length_sorted_batches(lengths: np.ndarray, batch_size: int | None, max_tokens: int | None = None) -> list:
    """Row numbers of each batch, longest inputs first; ties keep input order.

    `batch_size` caps a batch's rows, `max_tokens` its padded tokens (rows x its first, longest, row's length); a
    batch always holds at least one row, however long. With neither, everything is one batch."""
    if (batch_size is not None and batch_size < 1) or (max_tokens is not None and max_tokens < 1):
        raise ValueError("batch_size and max_tokens must be positive")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    if max_tokens is None:
        step = batch_size or max(len(order), 1)
        return [order[start : start + step] for start in range(0, len(order), step)]
    batches, start, widths = [], 0, np.asarray(lengths, dtype=np.int64)[order]
    while start < len(order):
        rows = max(1, max_tokens // max(int(widths[start]), 1))
        end = min(len(order), start + (min(rows, batch_size) if batch_size else rows))
        batches.append(order[start:end])
        start = end
    return batches


def run_batches(
    batches: Iterable[tuple[np.ndarray, dict[str, Any]]],
    count: int,
    tail: tuple[int, ...],
    runtime: Runtime,
    forward: Callable[[dict[str, Any]], Any],
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """`forward` over each (row numbers, padded host tensors) batch on `runtime`, its outputs (shape (rows, *tail))
    back in input order as float32 (count, *tail). `batches` may be a generator (each padded when its turn comes).
    The outputs stay on the device until the last batch is launched and come back in one copy: no synchronisation
    between batches (host tensors pinned on CUDA copy asynchronously)."""
    import torch

    out = np.empty((count, *tail), dtype=np.float32)
    outputs, order = [], []
    non_blocking = runtime.device_type == "cuda"
    with torch.inference_mode(), runtime.autocast():
        for rows, batch in batches:
            inputs = {key: value.to(runtime.device, non_blocking=non_blocking) for key, value in batch.items()}
            outputs.append(forward(inputs))
            order.append(rows)
            if on_batch is not None:
                on_batch(len(rows))
    if outputs:
        out[np.concatenate(order)] = torch.cat(outputs).float().cpu().numpy()
    return out


def prefetched(items: Iterable[Item], work: Callable[[Item], Result], depth: int = 1) -> Iterator[tuple[Item, Result]]:
    """(item, work(item)) in input order, `work` running on a background thread up to `depth` items ahead of the
    consumer (depth 0: inline, nothing ahead). At most depth + 1 results are held at once, so a stream stays a
    stream. `items` is read on the caller's thread (its errors are raised there); an error in `work` is raised
    by the consumer's next step, as if `work` had run inline; closing the iterator early (the consumer failed or
    stopped) cancels what has not started and waits only for the item in progress.

    Useful where `work` releases the GIL (Hugging Face fast tokenizers do, in Rust) or waits on I/O."""
    if depth <= 0:
        for item in items:
            yield item, work(item)
        return
    pending: collections.deque[tuple[Item, Future]] = collections.deque()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simlm-prefetch")
    try:
        for item in items:
            pending.append((item, pool.submit(work, item)))
            if len(pending) > depth:
                head, future = pending.popleft()
                yield head, future.result()
        while pending:
            head, future = pending.popleft()
            yield head, future.result()
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)
