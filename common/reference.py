"""The ground truth: the two-layer net in NumPy with a hand-written backward pass.

Also an implementation like the others: `python -m common.reference --help`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from common import data, runner
from common.config import RunConfig
from common.problem import Problem
from common.timing import Trainer

FRAMEWORK = "numpy"
VARIANTS = ("manual",)
MINIBATCH_VARIANTS = VARIANTS


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


def build(cfg: RunConfig, problem: Problem, variant: str = "manual") -> Trainer:
    if cfg.device != "cpu":
        raise NotImplementedError("NumPy runs on the CPU only")
    w1, w2 = problem.w1.copy(), problem.w2.copy()
    lr = np.dtype(cfg.dtype).type(cfg.lr)

    def step(x=problem.x, y=problem.y):  # minibatch mode passes each batch; else the lecture's one
        nonlocal w1, w2  # updated in place; the name binding is what needs declaring
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

    # NumPy has no device and no loader: resident and copy gather alike; prefetch adds threads.
    feed = (lambda: data.feed_batches(cfg, problem)) if cfg.minibatch else None
    return Trainer(step, weights=lambda: (w1.copy(), w2.copy()), feed=feed)


def reference_losses(cfg: RunConfig, problem: Problem, order: np.ndarray | None = None) -> list[float]:
    """Per-step losses of plain SGD, the sequence every implementation is judged against.

    In minibatch mode the batches follow `order` (default: the shared data.batch_order(cfg)).
    """
    step = build(dataclasses.replace(cfg, device="cpu"), problem).step
    if cfg.minibatch:
        batches = (data.gather(problem.x, problem.y, rows) for rows in
                   (data.batch_order(cfg) if order is None else order))
    else:
        batches = ((problem.x, problem.y) for _ in range(cfg.steps))
    losses = []
    for x, y in batches:
        losses.append(float(step(x, y)))
        if not np.isfinite(losses[-1]):
            break
    return losses


def train(cfg: RunConfig, problem: Problem, variant: str = "manual", save_weights=None):
    return runner.run_training(cfg, FRAMEWORK, variant, lambda: build(cfg, problem, variant),
                               versions={"numpy": np.__version__}, save_weights=save_weights)


if __name__ == "__main__":
    runner.main(FRAMEWORK, VARIANTS, train)
