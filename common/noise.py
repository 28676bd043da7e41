"""The rounding noise of correct runs: how far the reference's own losses and weights move when
only the order of its sums changes. Every run is judged against it (common/equivalence.py).

Why these orders span what real frameworks do. A framework computes the same products and sums
as the reference, in its own order: BLAS kernels block a reduction differently by shape, layout
and thread count; fused kernels (XLA, ONNX Runtime's FusedMatMul, torch.compile) and reductions
over a transposed layout add in other orders; data-parallel engines add per-worker partial sums.
The ensemble below makes each of those changes to the reference itself:
- rows reversed, and shuffled three ways: every sum over the batch (the loss, grad_w1, grad_w2)
  in another order;
- halves and quarters: the batch in parts, losses and gradients added, as data-parallel workers do;
- transposed: each product through its transpose, a BLAS kernel blocked the other way, as with
  weights stored (out, in) by nn.Linear;
- inner sums split: each product's inner sum in two halves, another blocking of the K loop;
- ReLU input rounded once: h = x @ w1 summed in float64 and rounded, which is what decides a
  ReLU whose input is within rounding of zero (the others share NumPy's kernel for h);
- one thread: BLAS's reductions split as a single thread splits them, not as the run's threads do.
Their largest deviation at each step, widened over neighbouring steps (running_envelope), is the
noise. Under --precision bf16-mixed the members are common/reference.py's BF16_VARIANTS instead: where
frameworks round (a matmul's output kept in float32 or not, in the forward and in the gradients) weighs
about 200x the order of their sums there (common/bf16_bound.py), so those are what the ensemble varies,
with three orders of the sums beside them. Measured (docs/equivalence.md): correct implementations stay within a few noise units,
deliberately wrong ones leave it by orders of magnitude in float64 and by 10x-100x in float32.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from common.config import RunConfig
from common.problem import Problem
from common.reference import REORDERED, ReferenceRun, reference_run, variants_of  # noqa: F401  (ReferenceRun: part of the API)


class Reference(NamedTuple):
    """The reference run and the noise every other run is judged within."""

    run: ReferenceRun
    noise: np.ndarray  # per step: the largest |loss_k - ref_k| among the reordered runs
    weights_noise: float  # their largest final-weight deviation, weight_error()'s measure
    cost_s: float  # what measuring the noise took
    deviation: np.ndarray | None = None  # per step, the members' largest |loss_k - ref_k| before the envelope

    @property
    def losses(self) -> list[float]:
        return self.run.losses


def weight_error(w1, w2, reference: ReferenceRun) -> float:
    """How far final weights are from the reference's: max |w - w_ref| / max |w_ref|, the worse of w1, w2."""
    return max(float(np.abs(np.asarray(got, dtype=np.float64) - want).max() / max(np.abs(want).max(), 1e-300))
               for got, want in ((w1, reference.w1), (w2, reference.w2)))


WINDOW_STEPS = 25  # each side


def running_envelope(deviation: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The per-step deviation made an envelope: at step k, the largest deviation relative to the
    loss within WINDOW_STEPS steps either side, times |ref_k|.

    A deviation oscillates around zero as SGD turns the weights' differences into the loss's,
    and the reordered runs tend to cross zero together, so their per-step maximum dips where a
    real run, of another phase, does not (measured: at step 301 of the float64 lecture run the
    ensemble's maximum was 2.7e-13 of the loss, against 1e-12 at step 250, 4.6e-12 at step 350,
    and torch's 3.6e-12 at step 301). Relative to the loss the noise changes slowly (it grows
    from ~1 ulp at step 1 to ~1e6 ulps at step 500), so a window of neighbours fills the dips.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.nan_to_num(np.where(ref != 0, deviation / np.abs(ref), 0.0), nan=np.inf)
    n = len(relative)
    widened = np.array([relative[max(0, k - WINDOW_STEPS):k + WINDOW_STEPS + 1].max() for k in range(n)])
    return widened * np.abs(ref)


def measure(cfg: RunConfig, problem: Problem, order: np.ndarray | None = None) -> Reference:
    """The reference and its noise envelope for this configuration (minibatch order included)."""
    from threadpoolctl import threadpool_limits

    start_s = time.perf_counter()
    reference = reference_run(cfg, problem, order)
    members = [reference_run(cfg, problem, order, reordered=name) for name in variants_of(cfg)]
    with threadpool_limits(limits=1):
        members.append(reference_run(cfg, problem, order))
    ref = np.asarray(reference.losses, dtype=np.float64)
    deviations = []
    for member in members:
        losses = np.full(len(ref), np.inf)  # a member that stopped early is no evidence of small noise
        n = min(len(ref), len(member.losses))
        losses[:n] = member.losses[:n]
        with np.errstate(invalid="ignore"):
            deviations.append(np.abs(losses - ref))
    deviation = np.max(deviations, axis=0) if deviations else np.zeros(len(ref))
    noise = running_envelope(deviation, ref) if deviations else deviation
    finite = np.isfinite(ref)
    weights_noise = max(weight_error(m.w1, m.w2, reference) for m in members) if finite.all() else np.inf
    return Reference(reference, noise, weights_noise, time.perf_counter() - start_s, deviation)
