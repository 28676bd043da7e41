"""How sure a median, and a ratio of medians, are: 95% block-bootstrap intervals (scipy.stats.bootstrap).

What is resampled: neighbouring steps are not independent draws (they share warm caches, a
neighbour's load on this shared machine, the CPU's clock for a while), so resampling single
steps would pretend to more information than a run holds and give intervals too narrow. Each
round's timed steps are cut into contiguous blocks, and the blocks, from every round, are
resampled whole (a block bootstrap): the correlation inside a block is kept, and a slow spell
that lasted a block counts as one draw, not as dozens. Rounds alone would be too few (3) to
resample.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

LEVEL = 0.95
BLOCK = 25  # steps per block, fewer when a round is short (at least 4 blocks a round)
RESAMPLES = 1000


def blocks(rounds: Sequence[Sequence[float]], block: int = BLOCK) -> list[np.ndarray]:
    """Each round's timed steps in contiguous blocks; a round's leftover steps join its last block."""
    shortest = min((len(r) for r in rounds if len(r)), default=0)
    size = max(1, min(block, shortest // 4))
    out = []
    for r in rounds:
        values = np.asarray(r, dtype=float)
        starts = list(range(0, len(values) - size + 1, size))
        for i, start in enumerate(starts):
            out.append(values[start:] if i == len(starts) - 1 else values[start:start + size])
    return out


def _bootstrap(samples: tuple, statistic, seed: int) -> tuple[float, float] | None:
    from scipy.stats import bootstrap

    if any(len(s) < 2 for s in samples):
        return None  # one block says nothing about its spread
    result = bootstrap(samples, statistic, vectorized=False, paired=False, n_resamples=RESAMPLES,
                       confidence_level=LEVEL, method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def median_interval(rounds: Sequence[Sequence[float]], seed: int = 0) -> tuple[float, float] | None:
    """95% interval of the median step time of `rounds` (each round's timed steps)."""
    parts = blocks(rounds)
    return _bootstrap((np.arange(len(parts)),), lambda idx: np.median(np.concatenate([parts[i] for i in idx])),
                      seed)


def ratio_interval(rounds_a: Sequence[Sequence[float]], rounds_b: Sequence[Sequence[float]],
                   seed: int = 0) -> tuple[float, float] | None:
    """95% interval of median(a) / median(b), the two runs resampled independently."""
    parts_a, parts_b = blocks(rounds_a), blocks(rounds_b)

    def ratio(idx_a, idx_b):
        return (np.median(np.concatenate([parts_a[i] for i in idx_a]))
                / np.median(np.concatenate([parts_b[i] for i in idx_b])))

    return _bootstrap((np.arange(len(parts_a)), np.arange(len(parts_b))), ratio, seed)


def indistinguishable(interval: tuple[float, float] | None) -> bool:
    """A ratio whose interval holds 1: these data cannot tell the two runs apart."""
    return interval is not None and interval[0] <= 1.0 <= interval[1]
