"""The ground truth: the lecture's NumPy two-layer net, with the backward pass written by hand.

A pure oracle: it imports nothing from the harness that judges against it. The `numpy`
implementation (implementations/numpy.py) trains with these same functions.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from common import data
from common.config import RunConfig
from common.problem import Problem


def loss_and_grads(x, y, w1, w2, h=None, mm=np.matmul, grad_mm=None):
    """Forward pass, loss = sum((y_pred - y)**2), and the gradients of loss w.r.t. w1, w2.

    `h`: x @ w1 computed elsewhere (common/noise.py's ensemble rounds it differently). `mm`, `grad_mm`:
    the forward's and the backward's matmul (default: `@` both; bf16-mixed passes rounding ones)."""
    grad_mm = mm if grad_mm is None else grad_mm
    h = mm(x, w1) if h is None else h
    h_relu = np.maximum(h, 0)
    y_pred = mm(h_relu, w2)
    diff = y_pred - y
    loss = (diff * diff).sum()

    grad_y_pred = 2.0 * diff
    grad_w2 = grad_mm(h_relu.T, grad_y_pred)
    grad_h = grad_mm(grad_y_pred, w2.T)
    grad_h[h < 0] = 0  # relu passes gradient only where it passed the input
    grad_w1 = grad_mm(x.T, grad_h)
    return loss, grad_w1, grad_w2


def sgd_step(x, y, w1, w2, lr, gradients=loss_and_grads):
    """One plain SGD step that updates w1, w2 in place; returns the loss before the update."""
    # Overflow on a diverging run is reported by the harness as "diverged at step k".
    with np.errstate(over="ignore", invalid="ignore"):
        loss, grad_w1, grad_w2 = gradients(x, y, w1, w2)
        # In place: a fresh 1000x100 temporary per step costs more than the matmuls
        # (large allocations are fresh mmaps, paid for in page faults every step).
        grad_w1 *= lr
        grad_w2 *= lr
        w1 -= grad_w1
        w2 -= grad_w2
    return loss


def _rows_reversed(x, y, w1, w2):
    """The batch's rows in reverse order: every sum over N (the loss, grad_w1, grad_w2) runs backwards."""
    return loss_and_grads(x[::-1], y[::-1], w1, w2)


def _rows_shuffled(seed: int):
    """The batch's rows in a fixed shuffled order: the sums over N in yet another order."""
    def gradients(x, y, w1, w2):
        rows = np.random.default_rng([seed, len(x)]).permutation(len(x))
        return loss_and_grads(x[rows], y[rows], w1, w2)
    return gradients


def _parts(count: int, step=loss_and_grads):
    """The batch in `count` parts, their losses and gradients added: `count` data-parallel workers."""
    def gradients(x, y, w1, w2):
        parts = [step(xs, ys, w1, w2) for xs, ys in zip(np.array_split(x, count), np.array_split(y, count))]
        return tuple(sum(values) for values in zip(*parts))
    return gradients


def _transposed(x, y, w1, w2):
    """Every product through its transpose, as frameworks that store W as (out, in) compute it:
    BLAS runs another kernel, blocked the other way."""
    h = (w1.T @ x.T).T
    h_relu = np.maximum(h, 0)
    y_pred = (w2.T @ h_relu.T).T
    diff = y_pred - y
    loss = (diff * diff).sum()  # diff is column-major here: the sum runs in that order
    grad_y_pred = 2.0 * diff
    grad_w2 = (grad_y_pred.T @ h_relu).T
    grad_h = (w2 @ grad_y_pred.T).T
    grad_h[h < 0] = 0
    grad_w1 = (grad_h.T @ x).T
    return loss, np.ascontiguousarray(grad_w1), np.ascontiguousarray(grad_w2)


def _inner_split(x, y, w1, w2):
    """Every product's inner sum (over D_in, H, D_out, N) in two halves, added: another blocking
    of the K loop, as MKL, oneDNN or MLAS choose by shape. Alone among these it changes each
    element of h = x @ w1, so it is the one that can flip a ReLU whose input is near zero."""
    def mm(a, b):
        k = a.shape[1] // 2
        return a[:, :k] @ b[:k] + a[:, k:] @ b[k:]

    h = mm(x, w1)
    h_relu = np.maximum(h, 0)
    y_pred = mm(h_relu, w2)
    diff = y_pred - y
    loss = (diff * diff).sum()
    grad_y_pred = 2.0 * diff
    grad_w2 = mm(h_relu.T, grad_y_pred)
    grad_h = mm(grad_y_pred, w2.T)
    grad_h[h < 0] = 0
    grad_w1 = mm(x.T, grad_h)
    return loss, grad_w1, grad_w2


def _relu_input_rounded_once(x, y, w1, w2):
    """The step with h = x @ w1 summed in float64 and rounded once to the run's dtype (in float64,
    the reference itself). Every other order shares NumPy's BLAS kernel for the elements of h, and
    an element within rounding of zero decides a ReLU: measured, seed 7 in float32, NumPy's sgemm
    put one on the other side at step 16 from torch, ONNX Runtime and float64 alike (1.4e-5 of
    the loss from there on). This is the one member that can take the other side too."""
    h = (x.astype(np.float64) @ w1.astype(np.float64)).astype(x.dtype)
    return loss_and_grads(x, y, w1, w2, h)


# The same step with its sums in another order, or h rounded once instead of at every add (common/noise.py
# runs them to measure the rounding noise of correct runs).
REORDERED = {"rows reversed": _rows_reversed, **{f"rows shuffled ({seed})": _rows_shuffled(seed) for seed in (1, 2, 3)},
             "halves": _parts(2), "quarters": _parts(4), "transposed": _transposed, "inner sums split": _inner_split,
             "relu input rounded once": _relu_input_rounded_once}


# --- bf16-mixed: float32 master weights, the matmuls in bfloat16 ------------------------------------
# The rounding points of torch.autocast("cpu", torch.bfloat16), of Keras' mixed_bfloat16 policy and of
# JAX with its arrays cast to bfloat16, which agree: each matmul rounds its inputs to bf16, sums the
# (exact) products in float32 and rounds its output to bf16; the loss is float32 (autocast's float32
# list; Keras casts y_pred to the loss's dtype); the gradients of the matmuls come out in bf16 and the
# update is float32. ReLU before or after a rounding is the same thing: rounding keeps the sign.

def to_bf16(a):
    """`a` rounded to bfloat16 (to nearest, ties to even) and held in float32, which holds every bf16 exactly."""
    import ml_dtypes  # only bf16-mixed needs it (a jax dependency, and a base one of this project)

    return np.asarray(a, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def bf16_matmul(a, b, round_output: bool = True):
    """An autocast matmul: inputs rounded to bf16, products (exact in float32: 8-bit by 8-bit mantissas)
    summed in float32, the output rounded to bf16 unless `round_output` is False."""
    c = to_bf16(a) @ to_bf16(b)
    return to_bf16(c) if round_output else c


def bf16_loss_and_grads(x, y, w1, w2, forward_rounded: bool = True, grads_rounded: bool = True, mm=bf16_matmul):
    """loss_and_grads with every matmul in bf16: the forward's outputs and the gradients' rounded to bf16
    unless told otherwise (the points where frameworks differ); the loss and its gradient in float32
    (each backward matmul rounds 2 * diff to bf16 as its input)."""
    return loss_and_grads(x, y, w1, w2, mm=functools.partial(mm, round_output=forward_rounded),
                          grad_mm=functools.partial(mm, round_output=grads_rounded))


def _bf16_transposed_matmul(a, b, round_output=True):
    """a @ b through its transpose: the float32 sums of the kernel blocked the other way."""
    c = (to_bf16(b).T @ to_bf16(a).T).T
    return np.ascontiguousarray(to_bf16(c) if round_output else c)


def _bf16_split_matmul(a, b, round_output=True):
    """The inner float32 sum in two halves, added before the one rounding of the output (another K blocking)."""
    k = a.shape[1] // 2
    c = to_bf16(a[:, :k]) @ to_bf16(b[:k]) + to_bf16(a[:, k:]) @ to_bf16(b[k:])
    return to_bf16(c) if round_output else c


# The bf16-mixed step where correct frameworks differ: where they round (a matmul's output kept in
# float32, as XLA may when it fuses or upcasts a bf16 dot; the backward's matmuls giving float32
# gradients), and the order of their float32 sums (common/noise.py measures the noise from them).
BF16_VARIANTS = {
    "forward outputs float32": lambda x, y, w1, w2: bf16_loss_and_grads(x, y, w1, w2, forward_rounded=False),
    "gradients float32": lambda x, y, w1, w2: bf16_loss_and_grads(x, y, w1, w2, grads_rounded=False),
    "no output rounded": lambda x, y, w1, w2: bf16_loss_and_grads(x, y, w1, w2, False, False),
    "rows reversed": lambda x, y, w1, w2: bf16_loss_and_grads(x[::-1], y[::-1], w1, w2),
    "halves": _parts(2, bf16_loss_and_grads),  # each part's bf16 gradients added in float32
    "transposed": lambda x, y, w1, w2: bf16_loss_and_grads(x, y, w1, w2, mm=_bf16_transposed_matmul),
    "inner sums split": lambda x, y, w1, w2: bf16_loss_and_grads(x, y, w1, w2, mm=_bf16_split_matmul),
}


def variants_of(cfg: RunConfig) -> dict:
    """The reordered (or re-rounded) steps whose spread is the noise of cfg's runs."""
    return BF16_VARIANTS if cfg.precision == "bf16-mixed" else REORDERED


class ReferenceRun(NamedTuple):
    losses: list[float]  # per step, before its update
    w1: np.ndarray  # after the last step
    w2: np.ndarray


def reference_run(cfg: RunConfig, problem: Problem, order: np.ndarray | None = None,
                  reordered: str | None = None) -> ReferenceRun:
    """Plain SGD: per-step losses and the final weights, what every implementation is judged against.

    In minibatch mode the batches follow `order` (default: the shared data.batch_order(cfg)).
    `reordered` names a step of variants_of(cfg): the same computation with its sums in another order
    (bf16-mixed: or rounded at other points).
    """
    w1, w2 = problem.w1.copy(), problem.w2.copy()
    lr = np.dtype(cfg.dtype).type(cfg.lr)
    if cfg.minibatch:
        batches = (data.gather(problem.x, problem.y, rows) for rows in
                   (data.batch_order(cfg) if order is None else order))
    else:
        batches = ((problem.x, problem.y) for _ in range(cfg.steps))
    exact = bf16_loss_and_grads if cfg.precision == "bf16-mixed" else loss_and_grads
    gradients = variants_of(cfg)[reordered] if reordered else exact
    losses = []
    for x, y in batches:
        losses.append(float(sgd_step(x, y, w1, w2, lr, gradients)))
        if not np.isfinite(losses[-1]):
            break
    return ReferenceRun(losses, w1, w2)


def reference_losses(cfg: RunConfig, problem: Problem, order: np.ndarray | None = None) -> list[float]:
    """Per-step losses of plain SGD (reference_run's), the sequence every implementation is judged against."""
    return reference_run(cfg, problem, order).losses
