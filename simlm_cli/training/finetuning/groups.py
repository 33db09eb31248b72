"""The draw of one training group (a positive and some negatives), shared by every fine-tuning objective so that
the bi-encoder and the cross-encoder sample alike and exact resume sees the same draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

Positive = TypeVar("Positive")
Negative = TypeVar("Negative")


def draw_group(
    rng: np.random.Generator, positives: Sequence[Positive], pool: Sequence[Negative], count: int
) -> tuple[Positive, list[Negative]]:
    """One of the positives and `count` of the pool. A pool smaller than `count` repeats some of its members, so
    every group has the same size (as the reference implementation does)."""
    positive = positives[int(rng.integers(len(positives)))]
    if not count:
        return positive, []
    picks = rng.choice(len(pool), size=count, replace=len(pool) < count)
    return positive, [pool[int(i)] for i in picks]
