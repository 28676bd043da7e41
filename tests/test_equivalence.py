"""The equivalence check passes correct runs and fails wrong ones, with the step that shows it."""

import dataclasses
import math

import numpy as np
import pytest

from common.config import RunConfig
from common.equivalence import TOLERANCE, judge, relative_errors
from common.problem import make_problem
from common.reference import loss_and_grads, reference_losses


def sgd_losses(cfg, grad_scale=1.0, lr_scale=1.0):
    """NumPy SGD with a deliberate bug: the gradient or the learning rate scaled."""
    x, y, w1, w2 = (a.copy() for a in make_problem(cfg))
    losses = []
    for _ in range(cfg.steps):
        loss, g1, g2 = loss_and_grads(x, y, w1, w2)
        losses.append(float(loss))
        w1 -= cfg.lr * lr_scale * grad_scale * g1
        w2 -= cfg.lr * lr_scale * grad_scale * g2
    return losses


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_reference_matches_itself_exactly(dtype):
    cfg = RunConfig(dtype=dtype, steps=50)
    ref = reference_losses(cfg, make_problem(cfg))
    verdict = judge(ref, ref, dtype)
    assert verdict.status == "ok" and verdict.max_rel_err == 0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bug", [{"grad_scale": 0.5}, {"lr_scale": 1.01}, {"grad_scale": 1 / 640}])
def test_wrong_gradient_or_learning_rate_is_a_mismatch(dtype, bug):
    # 0.5: a forgotten factor 2 in d(loss)/d(y_pred); 1/640: a mean instead of a sum over N*D_out.
    cfg = RunConfig(dtype=dtype, steps=50)
    ref = reference_losses(cfg, make_problem(cfg))
    verdict = judge(sgd_losses(cfg, **bug), ref, dtype)
    assert verdict.status == "mismatch"
    assert verdict.max_rel_err > 100 * TOLERANCE[dtype]
    assert verdict.worst_step >= 2  # step 1 is before any update, so it cannot differ


def test_error_at_step_one_is_plain_relative_error():
    errors = relative_errors([1.0 + 1e-6, 0.5], [1.0, 0.5], "float64")
    assert errors[0] == pytest.approx(1e-6)


def test_late_steps_are_scaled_by_the_geometric_mean_with_the_start():
    # a difference of 1e-9 at loss 1e-6 after starting at 1e6: sqrt(1e-6 * 1e6) = 1
    errors = relative_errors([1e6, 1e-6 + 1e-9], [1e6, 1e-6], "float64")
    assert errors[1] == pytest.approx(1e-9)


def test_diverged_run_is_never_a_match_even_when_the_reference_diverges_too():
    cfg = dataclasses.replace(RunConfig(), lr=1.0, steps=20)
    ref = reference_losses(cfg, make_problem(cfg))
    verdict = judge(ref, ref, cfg.dtype)
    assert verdict.status == "diverged" and verdict.worst_step == len(ref)
    assert f"step {len(ref)}" in verdict.error


def test_short_run_is_a_mismatch():
    assert judge([1.0, 0.5], [1.0, 0.5, 0.25], "float64").status == "mismatch"
    assert judge([], [], "float64").status == "mismatch"


def test_reference_divergence_alone_is_a_mismatch():
    verdict = judge([1.0, 0.5], [1.0, math.inf], "float64")
    assert verdict.status == "mismatch" and verdict.worst_step == 2


def test_measured_float32_noise_sits_well_inside_the_bound():
    # float32 vs float64 NumPy over the whole default run: the most any float32 run can be
    # expected to agree; the bound must sit above it (see common/equivalence.py).
    cfg32, cfg64 = RunConfig(), RunConfig(dtype="float64")
    err = relative_errors(reference_losses(cfg32, make_problem(cfg32)),
                          reference_losses(cfg64, make_problem(cfg64)), "float32")
    assert np.max(err) < TOLERANCE["float32"] / 2
