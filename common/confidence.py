"""How sure a median, and a ratio of medians, are: 95% bootstrap intervals (scipy.stats.bootstrap).

What is resampled, two ways, and the interval is the wider of the two:

- blocks of neighbouring steps. Neighbouring steps are not independent draws (they share warm
  caches, a neighbour's load on this shared machine, the CPU's clock for a while), so resampling
  single steps would pretend to more information than a run holds. Each round's timed steps are
  cut into contiguous blocks, and the blocks, from every round, are resampled whole: the
  correlation inside a block is kept, and a slow spell that lasted a block counts as one draw.
- whole rounds, when there are several. Each round is its own process, started minutes after the
  last; on this machine medians move more between processes than within one (docs/measurement.md's stability
  table: run twice, block intervals alone held the other run's median in 3 of 17 rows), and only
  resampling rounds sees that. Three rounds alone are too few to rely on, hence the hull.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# numpy.median inside the resampling loops, for speed: the same definition as common.timing.median
# (the interpolated 0.5 quantile; tests/test_confidence.py holds them equal).

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


def _hull(*intervals: tuple[float, float] | None) -> tuple[float, float] | None:
    found = [i for i in intervals if i is not None]
    return (min(i[0] for i in found), max(i[1] for i in found)) if found else None


def _steps_vary(rounds: list[np.ndarray]) -> bool:
    """False for a run whose steps ran in one call (a Loop): each carries the call's mean, and only
    its rounds differ."""
    return any(np.ptp(r) > 0 for r in rounds)


def _rounds(rounds: Sequence[Sequence[float]]) -> list[np.ndarray]:
    return [np.asarray(r, dtype=float) for r in rounds if len(r)]


def median_interval(rounds: Sequence[Sequence[float]], seed: int = 0) -> tuple[float, float] | None:
    """95% interval of the median step time of `rounds` (each round's timed steps): the wider of
    the blocks' interval and, with several rounds, the rounds' (each round its own process)."""
    parts, whole = blocks(rounds), _rounds(rounds)

    def median_of(pieces):
        return lambda idx: np.median(np.concatenate([pieces[i] for i in idx]))

    return _hull(_bootstrap((np.arange(len(parts)),), median_of(parts), seed) if _steps_vary(whole) else None,
                 _bootstrap((np.arange(len(whole)),), median_of(whole), seed) if len(whole) > 1 else None)


def ratio_interval(rounds_a: Sequence[Sequence[float]], rounds_b: Sequence[Sequence[float]],
                   seed: int = 0) -> tuple[float, float] | None:
    """95% interval of median(a) / median(b), the two runs resampled independently, by blocks and
    (with several rounds each) by rounds; the wider of the two."""
    def ratio_of(pieces_a, pieces_b):
        return lambda idx_a, idx_b: (np.median(np.concatenate([pieces_a[i] for i in idx_a]))
                                     / np.median(np.concatenate([pieces_b[i] for i in idx_b])))

    parts_a, parts_b = blocks(rounds_a), blocks(rounds_b)
    whole_a, whole_b = _rounds(rounds_a), _rounds(rounds_b)
    by_blocks = (_bootstrap((np.arange(len(parts_a)), np.arange(len(parts_b))), ratio_of(parts_a, parts_b), seed)
                 if _steps_vary(whole_a) and _steps_vary(whole_b) else None)
    by_rounds = (_bootstrap((np.arange(len(whole_a)), np.arange(len(whole_b))), ratio_of(whole_a, whole_b), seed)
                 if len(whole_a) > 1 and len(whole_b) > 1 else None)
    return _hull(by_blocks, by_rounds)


def median_of_values_interval(values: Sequence[float], seed: int = 0) -> tuple[float, float] | None:
    """95% interval of the median of independent values (the harness cost's lapped/bare pairs)."""
    data = np.asarray(values, dtype=float)
    return _bootstrap((np.arange(len(data)),), lambda idx: np.median(data[idx]), seed)


def indistinguishable(interval: tuple[float, float] | None) -> bool:
    """A ratio whose interval holds 1: these data cannot tell the two runs apart."""
    return interval is not None and interval[0] <= 1.0 <= interval[1]
