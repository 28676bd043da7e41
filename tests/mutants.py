"""Deliberately wrong copies of the reference's SGD, each a bug a real implementation could have.

Each is the reference's own step with one change, from some step on (1-based), so the run is
right up to there: a check blind to late training lets the late ones through.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from common.config import RunConfig
from common.problem import Problem
from common.reference import ReferenceRun, loss_and_grads


class Mutant(NamedTuple):
    name: str
    # (step, lr, grad_w1, grad_w2) -> (lr, grad_w1, grad_w2) used for that step's update, or None to skip it
    change: Callable
    must_catch: tuple[str, ...]  # the dtypes in which the check has to report it


def _scaled_lr(factor: float, first: int, last: int | None = None):
    def change(step, lr, g1, g2):
        hit = step >= first and (last is None or step <= last)
        return (lr * lr.dtype.type(factor) if hit else lr), g1, g2
    return change


def _w2_gradient_scaled(factor: float, first: int):
    return lambda step, lr, g1, g2: (lr, g1, g2 * g2.dtype.type(factor) if step >= first else g2)


def _mean_from(first: int):
    """A mean over the N x D_out outputs instead of the sum: the gradient divided by their count."""
    def change(step, lr, g1, g2):
        return (lr / lr.dtype.type(_mean_from.count), g1, g2) if step >= first else (lr, g1, g2)
    return change


def _skipped(at: int):
    return lambda step, lr, g1, g2: None if step == at else (lr, g1, g2)


BOTH, FLOAT64 = ("float32", "float64"), ("float64",)
MUTANTS = [
    Mutant("lr x 1.1 from step 401", _scaled_lr(1.1, 401), BOTH),
    Mutant("lr x 1.01 from step 401", _scaled_lr(1.01, 401), FLOAT64),
    Mutant("lr x 1.001 at step 1 only", _scaled_lr(1.001, 1, 1), FLOAT64),
    Mutant("lr x 1.001 at step 250 only", _scaled_lr(1.001, 250, 250), FLOAT64),
    Mutant("lr x 1.001 at step 500 only", _scaled_lr(1.001, 500, 500), FLOAT64),
    Mutant("grad_w2 x 1.001 after step 300", _w2_gradient_scaled(1.001, 301), FLOAT64),
    Mutant("a mean instead of the sum from step 450", _mean_from(450), BOTH),
    Mutant("step 250 skipped", _skipped(250), BOTH),
]


def mutant_run(cfg: RunConfig, problem: Problem, mutant: Mutant) -> ReferenceRun:
    """The reference's SGD on the lecture's batch, with the mutant's change."""
    x, y = problem.x, problem.y
    w1, w2 = problem.w1.copy(), problem.w2.copy()
    lr = np.dtype(cfg.dtype).type(cfg.lr)
    _mean_from.count = y.size
    losses = []
    for step in range(1, cfg.steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            loss, g1, g2 = loss_and_grads(x, y, w1, w2)
            losses.append(float(loss))
            update = mutant.change(step, lr, g1, g2)
            if update is not None:
                step_lr, g1, g2 = update
                w1 -= step_lr * g1
                w2 -= step_lr * g2
    return ReferenceRun(losses, w1, w2)
