"""The NumPy reference is the oracle, so it is checked against calculus itself."""

import dataclasses

import numpy as np
import pytest

from common.config import RunConfig
from common.problem import make_problem
from common.reference import loss_and_grads, reference_losses
from tests.conftest import small_config


def numeric_grad(f, w, eps=1e-6):
    grad = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        saved = w[idx]
        w[idx] = saved + eps
        plus = f()
        w[idx] = saved - eps
        minus = f()
        w[idx] = saved
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def test_gradients_match_central_finite_differences_in_float64():
    x, y, w1, w2 = make_problem(small_config(dtype="float64"))
    _, grad_w1, grad_w2 = loss_and_grads(x, y, w1, w2)
    loss_only = lambda: loss_and_grads(x, y, w1, w2)[0]  # noqa: E731
    for analytic, w in ((grad_w1, w1), (grad_w2, w2)):
        numeric = numeric_grad(loss_only, w)
        rel = np.abs(analytic - numeric).max() / np.abs(numeric).max()
        assert rel < 1e-7, rel


def test_problem_is_seeded_and_dtype_follows_config():
    a = make_problem(small_config(seed=3))
    b = make_problem(small_config(seed=3))
    c = make_problem(small_config(seed=4))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a.x, c.x)
    assert {arr.dtype for arr in make_problem(small_config(dtype="float64"))} == {np.dtype("float64")}
    assert a.x.shape == (8, 20) and a.y.shape == (8, 3) and a.w1.shape == (20, 6) and a.w2.shape == (6, 3)


def test_float32_problem_is_the_rounded_float64_problem():
    p32 = make_problem(small_config())
    p64 = make_problem(small_config(dtype="float64"))
    assert all(np.array_equal(a, b.astype(np.float32)) for a, b in zip(p32, p64))


def test_reference_trains_and_leaves_the_problem_untouched():
    cfg = RunConfig(dtype="float64", steps=50)
    problem = make_problem(cfg)
    before = [a.copy() for a in problem]
    losses = reference_losses(cfg, problem)
    assert len(losses) == 50
    assert losses[-1] < 1e-2 * losses[0]
    assert all(np.array_equal(a, b) for a, b in zip(before, problem))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reference_steps_are_plain_sgd(dtype):
    cfg = small_config(dtype=dtype, steps=2)
    x, y, w1, w2 = make_problem(cfg)
    loss1, g1, g2 = loss_and_grads(x, y, w1, w2)
    lr = np.dtype(dtype).type(cfg.lr)
    loss2, _, _ = loss_and_grads(x, y, w1 - lr * g1, w2 - lr * g2)
    assert reference_losses(cfg, make_problem(cfg)) == [float(loss1), float(loss2)]


def test_reference_stops_at_the_first_non_finite_loss():
    cfg = dataclasses.replace(RunConfig(), lr=1.0, steps=50)
    losses = reference_losses(cfg, make_problem(cfg))
    assert len(losses) < 50 and not np.isfinite(losses[-1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_numpy_rung_and_the_oracle_write_the_same_math_apart_and_agree_bit_for_bit(dtype):
    """implementations/numpy.py is the lecture's code, common/reference.py the judge: two texts, one result."""
    from common.reference import reference_run
    from implementations import numpy as numpy_rung

    cfg = RunConfig(dtype=dtype, steps=40)
    problem = make_problem(cfg)
    trainer = numpy_rung.build(cfg, problem, "manual")
    losses = [float(trainer.step()) for _ in range(cfg.steps)]
    oracle = reference_run(cfg, problem)
    assert losses == list(oracle.losses)
    w1, w2 = trainer.weights()
    assert np.array_equal(w1, oracle.w1) and np.array_equal(w2, oracle.w2)
