"""The step timer and its statistics. Implementations build; only this module holds the clock."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

# IQR/median above this and the median is not a number to quote without a caveat.
NOISY_SPREAD = 0.10


def no_sync() -> None:
    """The sync hook for host-only work: the step has finished when it returns."""


class Trainer(NamedTuple):
    """What an implementation's build() returns: one SGD step and its device barrier."""

    step: Callable[[], float]  # runs one SGD step, returns that step's loss (before the update)
    sync: Callable[[], None] = no_sync  # waits until the device has finished queued work


def time_steps(trainer: Trainer, steps: int) -> tuple[list[float], list[float]]:
    """Run `steps` SGD steps; return per-step losses and wall times in seconds.

    The clock stops only after `sync()`, so queued device work is counted. Stops early at
    the first non-finite loss: everything after it would be noise.
    """
    losses: list[float] = []
    times_s: list[float] = []
    step, sync = trainer.step, trainer.sync
    clock = time.perf_counter_ns
    for _ in range(steps):
        start_ns = clock()
        loss = float(step())
        sync()
        times_s.append((clock() - start_ns) * 1e-9)
        losses.append(loss)
        if not math.isfinite(loss):
            break
    return losses, times_s


@dataclass(frozen=True)
class StepStats:
    """Summary of the timed steps after warm-up."""

    n: int
    median_s: float
    iqr_s: float
    min_s: float
    max_s: float

    @property
    def spread(self) -> float:
        return self.iqr_s / self.median_s if self.median_s > 0 else math.inf

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY_SPREAD


def _quantile(sorted_values: list[float], q: float) -> float:
    # Linear interpolation between closest ranks, as numpy.quantile's default does.
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def step_stats(step_times_s: list[float], warmup: int) -> StepStats | None:
    """Statistics over step_times_s without step 1 (setup) and the next `warmup` steps."""
    timed = sorted(step_times_s[1 + warmup:])
    if not timed:
        return None
    return StepStats(
        n=len(timed),
        median_s=_quantile(timed, 0.5),
        iqr_s=_quantile(timed, 0.75) - _quantile(timed, 0.25),
        min_s=timed[0],
        max_s=timed[-1],
    )
