"""The ground truth: the lecture's NumPy two-layer net, with the backward pass written by hand.

A pure oracle: it imports nothing from the harness that judges against it. The `numpy`
implementation (implementations/numpy.py) trains with these same functions.
"""

from __future__ import annotations

import numpy as np

from common import data
from common.config import RunConfig
from common.problem import Problem


def loss_and_grads(x, y, w1, w2):
    """Forward pass, loss = sum((y_pred - y)**2), and the gradients of loss w.r.t. w1, w2."""
    h = x @ w1
    h_relu = np.maximum(h, 0)
    y_pred = h_relu @ w2
    diff = y_pred - y
    loss = (diff * diff).sum()

    grad_y_pred = 2.0 * diff
    grad_w2 = h_relu.T @ grad_y_pred
    grad_h = grad_y_pred @ w2.T
    grad_h[h < 0] = 0  # relu passes gradient only where it passed the input
    grad_w1 = x.T @ grad_h
    return loss, grad_w1, grad_w2


def sgd_step(x, y, w1, w2, lr):
    """One plain SGD step that updates w1, w2 in place; returns the loss before the update."""
    # Overflow on a diverging run is reported by the harness as "diverged at step k".
    with np.errstate(over="ignore", invalid="ignore"):
        loss, grad_w1, grad_w2 = loss_and_grads(x, y, w1, w2)
        # In place: a fresh 1000x100 temporary per step costs more than the matmuls
        # (large allocations are fresh mmaps, paid for in page faults every step).
        grad_w1 *= lr
        grad_w2 *= lr
        w1 -= grad_w1
        w2 -= grad_w2
    return loss


def reference_losses(cfg: RunConfig, problem: Problem, order: np.ndarray | None = None) -> list[float]:
    """Per-step losses of plain SGD, the sequence every implementation is judged against.

    In minibatch mode the batches follow `order` (default: the shared data.batch_order(cfg)).
    """
    w1, w2 = problem.w1.copy(), problem.w2.copy()
    lr = np.dtype(cfg.dtype).type(cfg.lr)
    if cfg.minibatch:
        batches = (data.gather(problem.x, problem.y, rows) for rows in
                   (data.batch_order(cfg) if order is None else order))
    else:
        batches = ((problem.x, problem.y) for _ in range(cfg.steps))
    losses = []
    for x, y in batches:
        losses.append(float(sgd_step(x, y, w1, w2, lr)))
        if not np.isfinite(losses[-1]):
            break
    return losses
