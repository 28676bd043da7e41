"""The two-layer net in NumPy: the lecture's first version, the backward pass written by hand.

- manual: forward, loss, backward and update written out, the lecture's first slide. The
          oracle (common/reference.py) writes the same math apart, so that it judges this file
          rather than being it; tests/test_reference.py holds the two bit-identical.

Run alone: python -m implementations.numpy --dtype float64 --steps 100
"""

from __future__ import annotations

import numpy as np

from common import data
from common.config import RunConfig
from common.problem import Problem, Start, place
from common.timing import Trainer


# --- the network and loss --------------------------------------------------------------------

def forward(x, w1, w2):
    h = x @ w1
    h_relu = np.maximum(h, 0)
    y_pred = h_relu @ w2
    return h, h_relu, y_pred


# --- the step of each variant -----------------------------------------------------------------

def build_manual(cfg: RunConfig, start: Start) -> Trainer:
    w1, w2 = start.w1, start.w2
    lr = np.dtype(cfg.dtype).type(cfg.lr)

    def step(x=start.x, y=start.y):  # minibatch mode passes each batch; else the lecture's one
        nonlocal w1, w2  # `w -= ...` updates them in place, and would otherwise make them local
        # overflow on a diverging run is reported by the harness as "diverged at step k"
        with np.errstate(over="ignore", invalid="ignore"):
            # Forward pass: compute predicted y, and the loss
            h, h_relu, y_pred = forward(x, w1, w2)
            loss = np.square(y_pred - y).sum()

            # Backward pass: the gradients of the loss w.r.t. w1 and w2, by hand
            grad_y_pred = 2.0 * (y_pred - y)
            grad_w2 = h_relu.T @ grad_y_pred
            grad_h = grad_y_pred @ w2.T
            grad_h[h < 0] = 0
            grad_w1 = x.T @ grad_h

            # Update the weights, in place: a fresh 1000x100 array a step costs more than the matmuls
            grad_w1 *= lr
            grad_w2 *= lr
            w1 -= grad_w1
            w2 -= grad_w2
        return loss

    return Trainer(step, weights=lambda: (w1.copy(), w2.copy()))


BUILDERS = {"manual": build_manual}


# --- the feed (minibatch mode) ----------------------------------------------------------------

def make_feed(cfg: RunConfig, problem: Problem):
    """Minibatches in the shared order. NumPy has no device and no loader: resident and copy
    gather alike, prefetch adds threads, disk reads a memory map (common/data.py)."""
    return lambda: data.feed_batches(cfg, problem)


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    if cfg.device != "cpu":
        raise NotImplementedError("NumPy runs on the CPU only")
    # the framework's own copies: training in place must never write into the shared Problem
    start = place(cfg, problem, "cpu", np.copy)
    trainer = BUILDERS[variant](cfg, start)
    if cfg.minibatch:  # every step gets its batch from the feed
        trainer = trainer._replace(feed=make_feed(cfg, problem))
    return trainer


if __name__ == "__main__":
    from implementations.standalone import main

    main("numpy", build)
