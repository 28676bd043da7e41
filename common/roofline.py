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


def shape_key(cfg: RunConfig) -> str:
    """The sizes and dtype a shape floor was measured at (threads are the comparison's own)."""
    return f"{cfg.batch}x{cfg.d_in}x{cfg.hidden}x{cfg.d_out}/{cfg.dtype}"


def measure_shape_floor(cfg: RunConfig, budget_s: float = 0.3, max_repeats: int = 200) -> dict[str, float]:
    """A floor the step's own shapes can reach: its five matmuls, then its elementwise work,
    each timed alone with NumPy at the run's sizes, dtype and threads, best of k.

    The peak-rate floor assumes BLAS runs at its 2048^3 rate; at 64x1000x100 no BLAS does, so
    that floor mixes slow small kernels with framework overhead. This one is the arithmetic of
    this very step with nothing around it: outputs preallocated (no allocator), the transposes
    passed to BLAS as flags (no copies). The elementwise part is NumPy's one pass per op, on
    one thread (as NumPy's ufuncs run), the same passes the reference makes.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    n, d, h, o = cfg.batch, cfg.d_in, cfg.hidden, cfg.d_out
    x, y, w1, w2 = (rng.standard_normal(shape).astype(cfg.dtype) for shape in ((n, d), (n, o), (d, h), (h, o)))
    hidden, h_relu, grad_h = (np.empty((n, h), cfg.dtype) for _ in range(3))
    y_pred, diff, grad_y_pred = (np.empty((n, o), cfg.dtype) for _ in range(3))
    grad_w1, grad_w2 = np.empty((d, h), cfg.dtype), np.empty((h, o), cfg.dtype)
    step_w1, step_w2 = np.empty_like(grad_w1), np.empty_like(grad_w2)  # never scaled twice: no denormals
    negative = np.empty((n, h), bool)
    lr = np.asarray(cfg.lr, cfg.dtype)

    def matmuls():
        np.matmul(x, w1, out=hidden)
        np.matmul(h_relu, w2, out=y_pred)
        np.matmul(h_relu.T, grad_y_pred, out=grad_w2)
        np.matmul(grad_y_pred, w2.T, out=grad_h)
        np.matmul(x.T, grad_h, out=grad_w1)

    def elementwise():
        np.maximum(hidden, 0, out=h_relu)
        np.subtract(y_pred, y, out=diff)
        np.vdot(diff, diff)  # the loss
        np.multiply(diff, 2, out=grad_y_pred)
        np.less(hidden, 0, out=negative)
        np.putmask(grad_h, negative, 0)
        np.multiply(grad_w1, lr, out=step_w1)
        np.subtract(w1, step_w1, out=w1)
        np.multiply(grad_w2, lr, out=step_w2)
        np.subtract(w2, step_w2, out=w2)

    with threadpool_limits(limits=cfg.threads):
        # One real step in order first: every buffer then holds the finite values a step sees
        # (NaN or denormal garbage from np.empty could change the kernels' speed)
        np.matmul(x, w1, out=hidden)
        np.maximum(hidden, 0, out=h_relu)
        np.matmul(h_relu, w2, out=y_pred)
        np.subtract(y_pred, y, out=diff)
        np.multiply(diff, 2, out=grad_y_pred)
        grad_w1.fill(0)
        grad_w2.fill(0)
        matmuls()
        elementwise()
        return {"matmul_s": _best_of(matmuls, budget_s, max_repeats),
                "elementwise_s": _best_of(elementwise, budget_s, max_repeats)}


def _best_of(call, budget_s: float, max_repeats: int) -> float:
    """The fastest of repeated calls, repeated until the budget or max_repeats runs out (at least 3)."""
    best_s, spent_s, repeats = float("inf"), 0.0, 0
    while repeats < 3 or (spent_s < budget_s and repeats < max_repeats):
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        best_s, spent_s, repeats = min(best_s, elapsed), spent_s + elapsed, repeats + 1
    return best_s
