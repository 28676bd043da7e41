"""The machine's limit: peak matmul rate, and what each run achieves against it."""

from __future__ import annotations

import time

import numpy as np

from common.config import RunConfig


def measure_peak_gflops(dtype: str, threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best rate of NumPy's BLAS on a size^3 matmul: large enough to saturate the cores.

    Same dtype and thread count as the runs it is the yardstick for; the best of `repeats`
    because a peak is what the machine can do, not what it did on average.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    best_s = float("inf")
    with threadpool_limits(limits=threads):
        a @ b  # first call: page faults and BLAS start-up
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best_s = min(best_s, time.perf_counter() - start)
    return 2 * size**3 / best_s / 1e9


def floor_s(cfg: RunConfig, peak_gflops: float) -> float:
    """The compute floor: one step's FLOPs at the peak rate, with zero overhead."""
    return cfg.flops_per_step() / (peak_gflops * 1e9)


def achieved_gflops(cfg: RunConfig, median_s: float) -> float:
    return cfg.flops_per_step() / median_s / 1e9
