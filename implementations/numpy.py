"""The two-layer net in NumPy: the lecture's first version, the backward pass written by hand.

- manual: forward, loss, backward and update as common/reference.py writes them (the oracle
          and this implementation are one code, so a NumPy run matches it bit for bit).

Run alone: python -m implementations.numpy --dtype float64 --steps 100
"""

from __future__ import annotations

import numpy as np

from common import data
from common.config import RunConfig
from common.problem import Problem
from common.reference import sgd_step
from common.timing import Trainer


# --- the network and loss: common/reference.py, the oracle's own code -------------------------

# --- the step of each variant -----------------------------------------------------------------

def build_manual(cfg: RunConfig, x, y, w1, w2) -> Trainer:
    lr = np.dtype(cfg.dtype).type(cfg.lr)

    def step(x=x, y=y):  # minibatch mode passes each batch; else the lecture's one
        return sgd_step(x, y, w1, w2, lr)  # w1, w2 updated in place

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
    # Copies: training in place must never write into the shared Problem.
    w1, w2 = problem.w1.copy(), problem.w2.copy()
    if cfg.minibatch:  # every step gets its batch from the feed
        return BUILDERS[variant](cfg, None, None, w1, w2)._replace(feed=make_feed(cfg, problem))
    return BUILDERS[variant](cfg, problem.x, problem.y, w1, w2)


if __name__ == "__main__":
    from implementations.standalone import main

    main("numpy", build)
