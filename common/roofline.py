"""The machine's limit: peak matmul rate, the step's own kernels, and what each run achieves against them.

NumPy-only pieces; each library's own kernels are timed by implementations.kernels, in a child
per library that common.yardstick starts.
"""

from __future__ import annotations

import time

import numpy as np

from common.config import RunConfig


def floor_s(cfg: RunConfig, peak_gflops: float) -> float:
    """The compute floor: one step's FLOPs at the peak rate, with zero overhead."""
    return cfg.flops_per_step() / (peak_gflops * 1e9)


def achieved_gflops(cfg: RunConfig, median_s: float) -> float:
    return cfg.flops_per_step() / median_s / 1e9


Shape = tuple[int, int, int, int]  # (N, D_in, H, D_out)


def shape_of(cfg: RunConfig) -> Shape:
    return (cfg.batch, cfg.d_in, cfg.hidden, cfg.d_out)


def key_of(shape: Shape, dtype: str) -> str:
    """The sizes and dtype a shape floor was measured at (threads are the comparison's own)."""
    return "x".join(map(str, shape)) + f"/{dtype}"


def shape_key(cfg: RunConfig) -> str:
    return key_of(shape_of(cfg), cfg.dtype)


def step_buffers(shape: Shape, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Every array one step reads, with the finite values a real step holds (NumPy computes it).

    Kernel timers start from these, so no library times NaN or denormal garbage, and each
    times the same numbers: x, y, w1, w2, the forward pass's h, h_relu, y_pred, diff and the
    backward pass's grad_y_pred, grad_h (before the ReLU's mask), grad_w1 and grad_w2.
    """
    rng = np.random.default_rng(seed)
    n, d, h, o = shape
    x, y, w1, w2 = (rng.standard_normal(s).astype(dtype) for s in ((n, d), (n, o), (d, h), (h, o)))
    hidden = x @ w1
    h_relu = np.maximum(hidden, 0)
    y_pred = h_relu @ w2
    diff = y_pred - y
    grad_y_pred = 2 * diff
    grad_h = grad_y_pred @ w2.T
    return {"x": x, "y": y, "w1": w1, "w2": w2, "h": hidden, "h_relu": h_relu, "y_pred": y_pred, "diff": diff,
            "grad_y_pred": grad_y_pred, "grad_h": grad_h, "grad_w1": x.T @ np.where(hidden < 0, 0, grad_h),
            "grad_w2": h_relu.T @ grad_y_pred}


def numpy_step_parts(shape: Shape, dtype: str, lr: float):
    """NumPy's own kernels of one step: (its five matmuls, its elementwise passes), each a call.

    Outputs preallocated (no allocator), the transposes passed to BLAS as flags (no copies);
    the elementwise part is NumPy's one pass per op, on one thread (as NumPy's ufuncs run), the
    same passes the reference makes.
    """
    b = step_buffers(shape, dtype)
    x, y, w1, w2 = (b[k].copy() for k in ("x", "y", "w1", "w2"))
    hidden, h_relu, grad_h = b["h"].copy(), b["h_relu"].copy(), b["grad_h"].copy()
    y_pred, diff, grad_y_pred = b["y_pred"].copy(), b["diff"].copy(), b["grad_y_pred"].copy()
    grad_w1, grad_w2 = b["grad_w1"].copy(), b["grad_w2"].copy()
    step_w1, step_w2 = np.empty_like(grad_w1), np.empty_like(grad_w2)  # never scaled twice: no denormals
    negative = np.empty(hidden.shape, bool)
    lr = np.asarray(lr, dtype)

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

    return matmuls, elementwise


def square_operands(size: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Two standard normal size x size matrices: every library's large matmul multiplies these."""
    rng = np.random.default_rng(0)
    return tuple(rng.standard_normal((size, size)).astype(dtype) for _ in range(2))


def numpy_square(size: int, dtype: str):
    """NumPy's size^3 matmul as a call: the peak as NumPy's BLAS reaches it."""
    a, b = square_operands(size, dtype)
    out = np.empty((size, size), dtype)
    return lambda: np.matmul(a, b, out=out)


MIN_RESOLVED = 0.05  # the least share of a call that time_parts takes as the kernels' own
MIN_REPEATS = 5  # best_of's fewest calls, however long each takes


def time_parts(matmuls, elementwise, empty=None, budget_s: float = 0.3, max_repeats: int = 200) -> dict[str, float]:
    """Best-of-k seconds of each part; with `empty` (a call of the same kind that does nothing),
    its best is taken off each: a compiled library pays one dispatch per call, which belongs to a
    run's overhead, not to its kernels."""
    matmuls(), elementwise()  # first calls: compilation, page faults, thread start-up
    dispatch_s = best_of(empty, budget_s / 3, max_repeats) if empty is not None else 0.0
    parts = {"matmul_s": best_of(matmuls, budget_s, max_repeats),
             "elementwise_s": best_of(elementwise, budget_s, max_repeats)}
    kernels = {name: s - dispatch_s for name, s in parts.items()}
    # Where the dispatch is nearly the whole call, the kernels are below what two best-of timings
    # can resolve: recorded as MIN_RESOLVED of the call, and named
    unresolved = [name for name, s in kernels.items() if s < MIN_RESOLVED * parts[name]]
    kernels |= {name: MIN_RESOLVED * parts[name] for name in unresolved}
    return kernels | {"dispatch_s": dispatch_s} | ({"unresolved": unresolved} if unresolved else {})


def peak_rate(square, size: int, repeats: int = 5) -> float:
    """GFLOP/s of the best of `repeats` size^3 matmuls after one untimed call: a peak is what the
    machine can do, not what it did on average."""
    square()  # first call: page faults and thread start-up
    best_s = min(_timed(square) for _ in range(repeats))
    return 2 * size**3 / best_s / 1e9


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def best_of(call, budget_s: float, max_repeats: int) -> float:
    """The fastest of repeated calls, repeated until the budget or max_repeats runs out (at least MIN_REPEATS)."""
    best_s, spent_s, repeats = float("inf"), 0.0, 0
    while repeats < MIN_REPEATS or (spent_s < budget_s and repeats < max_repeats):
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        best_s, spent_s, repeats = min(best_s, elapsed), spent_s + elapsed, repeats + 1
    return best_s
