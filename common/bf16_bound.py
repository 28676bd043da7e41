"""A derived bound on how far two correct bf16-mixed runs can be apart, step by step, and how far
inside it the measured noise ensemble sits (docs/mixed-precision.md).

One autocast matmul C = A @ B over K terms: A and B rounded to bf16 (each element within u_b of
itself), the products exact in float32, their sum in float32 (K u_s, to first order), the output
rounded to bf16 (u_b). So, elementwise and to first order,

    |C_hat - C| <= (3 u_b + K u_s) |A| |B|,      u_b = 2^-8, u_s = 2^-24.

At K = 1000 the rounding points (3 u_b = 1.2e-2) weigh about 200x the order of the sums
(K u_s = 6e-5): where a framework rounds matters, the order it adds in hardly does; in float32
the noise ensemble only reorders sums. The bound follows the step through the net at the
reference's weights: the error of h = x @ w1 enters y_pred = relu(h) @ w2 through |w2| (ReLU
moves nothing further than its input moves), the loss's error is sum(2 |diff| e_y + e_y^2)
plus its float32 sum, and the gradients' errors follow from the same rule. A run's weights
then drift from the exact run's by the sum of lr times its past gradients' errors, which moves
the loss by at most sum(|grad| * drift); that assumes an SGD step does not stretch a difference
of weights (true of a converging step to first order; checked here only by measurement). Each
correct run is within the bound of the exact computation, so two are within twice it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

U_BF16 = 2.0 ** -8  # unit roundoff of bfloat16: 8 significant bits
U_F32 = 2.0 ** -24


def gamma(k: int) -> float:
    """The relative bound of one autocast matmul over k terms: 3 roundings to bf16 and a float32 sum."""
    return 3 * U_BF16 + k * U_F32


class StepBound(NamedTuple):
    forward: float  # the loss's error from this step's own roundings, at the reference's weights
    drift: float  # the loss's error from the weights' drift, accumulated over the steps before
    total: float  # twice their sum: the distance two correct runs may be apart


# The probabilistic model's width: |Z| > 5 for a normal Z has probability 5.7e-7, below one in the
# 500 steps x 5 seeds x runs a campaign judges.
LAMBDA = 5.0


def bounds(x, y, w1_start, w2_start, lr: float, steps: int, model: str = "worst") -> list[StepBound]:
    """The bound at every step of the bf16-mixed reference's trajectory (recomputed here in float64
    from the same start: the bound is a first-order one, and the trajectory's own rounding is
    second order in it).

    model="worst": every rounding at its worst, the errors adding up (the derivation above).
    model="rms": Higham and Mary's probabilistic model: each rounding error independent, zero-mean,
    uniform within +-u (variance u^2/3), so a K-term sum's error grows as sqrt(K), not K; the bound is
    LAMBDA standard deviations of the difference of two runs (sqrt(2) of one)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w1, w2 = np.array(w1_start, np.float64), np.array(w2_start, np.float64)
    n, d_in = x.shape
    hidden, d_out = w2.shape
    rms = model == "rms"
    # worst: |a||b| sums and their errors add; rms: squares and variances add
    mag = (lambda a: a * a) if rms else np.abs
    unit = U_BF16 ** 2 / 3 if rms else U_BF16
    f32 = U_F32 ** 2 / 3 if rms else U_F32

    def matmul(a, b, e_a=None, e_b=None, k=1):
        """Bound (worst) or variance (rms) of an autocast matmul's error, its inputs' errors carried in."""
        err = (2 * unit + k * f32) * (mag(a) @ mag(b)) + unit * mag(a @ b)
        if e_a is not None:
            err = err + e_a @ mag(b)
        if e_b is not None:
            err = err + mag(a) @ e_b
        return err

    drift1, drift2 = np.zeros_like(w1), np.zeros_like(w2)
    out = []
    for _ in range(steps):
        h = x @ w1
        h_relu = np.maximum(h, 0)
        diff = h_relu @ w2 - y
        e_h = matmul(x, w1, k=d_in)
        e_y = matmul(h_relu, w2, e_a=e_h, k=hidden)
        if rms:  # the first-order term's standard deviation, and the square's mean
            forward = np.sqrt(np.sum(4 * diff ** 2 * e_y)) + np.sum(e_y)
        else:
            forward = np.sum(2 * np.abs(diff) * e_y + e_y ** 2) + n * d_out * U_F32 * np.sum(diff ** 2)

        g = 2 * diff
        e_g = 4 * e_y if rms else 2 * e_y
        grad_w2 = h_relu.T @ g
        e_w2 = matmul(h_relu.T, g, e_a=e_h.T, e_b=e_g, k=n)
        grad_h = np.where(h < 0, 0, g @ w2.T)
        e_gh = np.where(h < 0, 0, matmul(g, w2.T, e_a=e_g, k=d_out))
        grad_w1 = x.T @ grad_h
        e_w1 = matmul(x.T, grad_h, e_b=e_gh, k=n)

        if rms:
            drift = np.sqrt(np.sum(grad_w1 ** 2 * drift1) + np.sum(grad_w2 ** 2 * drift2))
            total = LAMBDA * np.sqrt(2) * (forward + drift)
        else:
            drift = np.sum(np.abs(grad_w1) * drift1) + np.sum(np.abs(grad_w2) * drift2)
            total = 2 * (forward + drift)
        out.append(StepBound(float(forward), float(drift), float(total)))
        # the next step's weights, and the drift a run may have gathered by then (its float32 update included)
        w1 -= lr * grad_w1
        w2 -= lr * grad_w2
        drift1 += (lr * lr if rms else lr) * e_w1 + f32 * mag(w1)
        drift2 += (lr * lr if rms else lr) * e_w2 + f32 * mag(w2)
    return out


def ensemble_inside(deviation, losses, found: list[StepBound]) -> dict:
    """How far inside the bound (`found`, bounds()'s) the noise ensemble sits: `deviation`, per step the
    largest |loss_k - ref_k| of its members (Reference.deviation, before the envelope). The smallest
    bound / deviation over the steps (>= 1: inside), and that at step 1, where every run starts from the
    same weights and the bound is a proof to first order rather than a model."""
    total = np.array([b.total for b in found])
    deviation = np.asarray(deviation, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(deviation > 0, total / deviation, np.inf)
    k = int(np.argmin(ratio))
    finite = ratio[np.isfinite(ratio)]
    return {"min_bound_over_noise": float(ratio[k]), "at_step": k + 1, "step1_bound_over_noise": float(ratio[0]),
            "median_bound_over_noise": float(np.median(finite)) if finite.size else None,
            "bound_over_loss_step1": float(total[0] / abs(losses[0])),
            "bound_over_loss_last": float(total[-1] / abs(losses[-1]))}
