"""Judging a run against the NumPy reference: every step's loss, and the final weights, within a
few times the rounding noise of correct runs (common/noise.py measures it per configuration).

A step matches when |loss_k - ref_k| <= FACTOR * (noise_k + FLOOR_ULPS * eps * |ref_k|): the
floor, a few ulps of the loss, covers steps where every reordered run happened to agree bit for
bit. The run's `x noise` is the worst step's |loss_k - ref_k| / (noise_k + floor_k): a match
means x noise <= FACTOR at every step. The final weights are judged the same way, against the
noise of the reordered runs' weights. FACTOR and the floors were derived by measurement, not
chosen (docs/equivalence.md: the command, the margins of correct runs, the wrong copies caught).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.noise import Reference, weight_error

# Measured with benchmarks/equivalence_margins.py (docs/equivalence.md; docs/equivalence): the
# largest x noise of any correct implementation and variant (losses or weights, seeds 0-4 at the
# lecture's size, three more configurations, 2 data-parallel workers) is 1.79 in float32 and 2.17
# in float64, each at least 3x below FACTOR. In float32 FACTOR cannot be larger: the weakest wrong
# copy that float32 must catch (lr x 1.1 from step 401) measured 6.74 at the least.
# bf16-mixed (benchmarks/bf16_margins.py, docs/mixed-precision.md): the largest x noise of any correct
# run over seeds 0-4 is 1.52, 3.6x below its FACTOR; the weakest wrong copy it must catch (the loss
# summed in bf16) measured 11 at the least.
FACTOR = {"float32": 5.5, "float64": 7.0, "bf16-mixed": 5.5}
FLOOR_ULPS = 4.0  # of the step's loss
WEIGHTS_FLOOR_ULPS = 4.0  # of the largest weight


@dataclass(frozen=True)
class Verdict:
    status: str  # ok | mismatch | diverged
    x_noise: float | None  # the worst step's error in units of that step's noise
    worst_step: int | None  # 1-based
    max_rel_err: float | None  # |loss_k - ref_k| / |ref_k| at the worst step, for a feel of the size
    weights_x_noise: float | None = None  # the final weights' error in units of their noise
    error: str | None = None


def first_non_finite(losses) -> int | None:
    """1-based step of the first NaN/inf loss, or None."""
    for k, value in enumerate(losses, start=1):
        if not math.isfinite(value):
            return k
    return None


def eps_of(numerics: str) -> float:
    """The unit roundoff of the floors: the dtype's; bf16-mixed keeps its loss and weights in float32."""
    return float(np.finfo("float32" if numerics == "bf16-mixed" else numerics).eps)


def step_noise(reference: Reference, dtype: str) -> np.ndarray:
    """Per step, the unit of `x noise`: the envelope plus the floor."""
    ref = np.abs(np.asarray(reference.losses, dtype=np.float64))
    return reference.noise + FLOOR_ULPS * eps_of(dtype) * ref


def x_noise_per_step(losses, reference: Reference, dtype: str) -> np.ndarray:
    """|loss_k - ref_k| / noise_k, on the steps both have."""
    n = min(len(losses), len(reference.losses))
    diff = np.abs(np.asarray(losses[:n], dtype=np.float64) - np.asarray(reference.losses[:n], dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return diff / np.maximum(step_noise(reference, dtype)[:n], np.finfo(np.float64).tiny)


def weights_x_noise(w1, w2, reference: Reference, dtype: str) -> float:
    """The final weights' error in units of their noise (plus the floor)."""
    unit = reference.weights_noise + WEIGHTS_FLOOR_ULPS * eps_of(dtype)
    return float(weight_error(w1, w2, reference.run) / unit)


def judge(losses, reference: Reference, dtype: str, weights: tuple | None = None) -> Verdict:
    """ok when every step's loss, and the final weights when given, are within FACTOR of the noise;
    a NaN/inf loss is never a match."""
    bad = first_non_finite(losses)
    if bad is not None:
        return Verdict("diverged", None, bad, None, error=f"diverged at step {bad}: loss is {losses[bad - 1]}")
    if len(losses) != len(reference.losses):
        return Verdict("mismatch", None, None, None,
                       error=f"ran {len(losses)} steps, the reference ran {len(reference.losses)}")
    if not losses:
        return Verdict("mismatch", None, None, None, error="no steps ran")
    ratios = x_noise_per_step(losses, reference, dtype)
    if not np.all(np.isfinite(ratios)):
        k = int(np.argmin(np.isfinite(ratios))) + 1
        return Verdict("mismatch", math.inf, k, None, error=f"the reference diverged at step {k}; this run did not")
    worst = int(np.argmax(ratios))
    ref_worst = abs(reference.losses[worst])
    rel = abs(losses[worst] - reference.losses[worst]) / ref_worst if ref_worst else None
    w_ratio = weights_x_noise(*weights, reference, dtype) if weights is not None else None
    factor = FACTOR[dtype]
    found = dict(x_noise=float(ratios[worst]), worst_step=worst + 1, max_rel_err=rel, weights_x_noise=w_ratio)
    if ratios[worst] > factor:
        return Verdict("mismatch", **found, error=f"step {worst + 1}: loss off by {ratios[worst]:.3g}x the rounding "
                                                  f"noise of correct runs (> {factor:g}x)")
    if w_ratio is not None and not w_ratio <= factor:
        return Verdict("mismatch", **found, error=f"final weights off by {w_ratio:.3g}x the rounding noise of "
                                                  f"correct runs (> {factor:g}x); every step's loss matched")
    return Verdict("ok", **found)
