"""Deliberately wrong copies of the bf16-mixed step, each a mistake a real mixed-precision run could make.

Each is the oracle's bf16-mixed step (common/reference.py) with one thing done differently. Those
the float32 check catches by their learning rate are here too, to show which bf16's rounding hides.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from common.config import RunConfig
from common.problem import Problem
from common.reference import ReferenceRun, bf16_loss_and_grads, bf16_matmul, to_bf16


class Bf16Mutant(NamedTuple):
    name: str
    must_catch: bool  # False: measured below bf16-mixed's resolution at the lecture's size (docs/mixed-precision.md)
    masters_bf16: bool = False  # the weights kept in bf16: every update rounded away below half an ulp
    cached_casts: bool = False  # the weights' bf16 casts made once (autocast entered once around the whole loop)
    loss_sum: str = "float32"  # "bf16": np.sum over a bf16 array, whose running sum ml_dtypes holds in bf16
    lr_factor: float = 1.0
    lr_steps: tuple[int, int] = (1, 0)  # first and last step (1-based) of lr_factor


BF16_MUTANTS = [
    Bf16Mutant("master weights in bf16", True, masters_bf16=True),
    Bf16Mutant("the weights cast to bf16 once, not every step", True, cached_casts=True),
    Bf16Mutant("the loss summed in bf16", True, loss_sum="bf16"),
    Bf16Mutant("lr x 1.1 over steps 21-120", False, lr_factor=1.1, lr_steps=(21, 120)),
    Bf16Mutant("lr x 1.1 from step 401", False, lr_factor=1.1, lr_steps=(401, 10**9)),
]


def _bf16_sum(squares) -> float:
    import ml_dtypes

    return float(squares.astype(ml_dtypes.bfloat16).sum())


def bf16_mutant_run(cfg: RunConfig, problem: Problem, mutant: Bf16Mutant) -> ReferenceRun:
    """The bf16-mixed reference's SGD on the lecture's batch, with the mutant's change."""
    x, y = problem.x, problem.y
    w1, w2 = problem.w1.copy(), problem.w2.copy()
    if mutant.masters_bf16:
        w1, w2 = to_bf16(w1), to_bf16(w2)
    cast_once = (to_bf16(w1), to_bf16(w2))
    lr = np.float32(cfg.lr)
    first, last = mutant.lr_steps
    losses = []
    for step in range(1, cfg.steps + 1):
        # the step computes from the weights' bf16 casts, so stale casts are the weights it sees
        c1, c2 = cast_once if mutant.cached_casts else (w1, w2)
        loss, grad_w1, grad_w2 = bf16_loss_and_grads(x, y, c1, c2)
        if mutant.loss_sum == "bf16":  # the same y_pred, its squares summed by ml_dtypes in bf16
            diff = bf16_matmul(np.maximum(bf16_matmul(x, c1), 0), c2) - y
            loss = _bf16_sum(diff * diff)
        losses.append(float(loss))
        step_lr = lr * np.float32(mutant.lr_factor) if first <= step <= last else lr
        w1 = w1 - step_lr * grad_w1
        w2 = w2 - step_lr * grad_w2
        if mutant.masters_bf16:
            w1, w2 = to_bf16(w1), to_bf16(w2)
    return ReferenceRun(losses, w1, w2)
