"""Per-step comparison of a run's losses with the NumPy reference.

The error at step k is |loss_k - ref_k| / max(|ref_k|, sqrt(|ref_k| * |ref_1|)).
Why not the plain relative error: rounding makes two correct runs' residuals y_pred - y
differ by a few ulps of y, a difference of fixed size, so their losses (the residuals'
squared norm) differ by about 2 * ||residual|| * that, which falls like sqrt(loss), not
like loss. Relative to the loss it grows as training converges (the default run falls
14 orders of magnitude; seeds 1 and 4 then reach 1.4e-9 and 1.8e-9 plain relative in
float64 with NumPy and torch both correct). Dividing by the geometric mean of the current
and the starting loss makes that noise flat across all steps, about 2 ulps of the dtype,
while step 1 and every step whose loss is still near the start are plain relative error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# float64: the project's bound (correct runs measure ~5e-16). float32: correct runs measure
# ~3e-7 against the float32 reference, and the float32 reference itself is 2e-5 away from
# the float64 one after 500 steps (stalled updates below an ulp of w): no float32 run can
# be held closer than that, so the bound is 5x it. A wrong gradient shows as >1e-2 at step 2.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


@dataclass(frozen=True)
class Verdict:
    status: str  # ok | mismatch | diverged
    max_rel_err: float | None
    worst_step: int | None  # 1-based
    error: str | None = None


def first_non_finite(losses) -> int | None:
    """1-based step of the first NaN/inf loss, or None."""
    for k, value in enumerate(losses, start=1):
        if not math.isfinite(value):
            return k
    return None


def relative_errors(losses, reference, dtype: str) -> np.ndarray:
    """Error per step, on the steps both sequences have."""
    n = min(len(losses), len(reference))
    run = np.asarray(losses[:n], dtype=np.float64)
    ref = np.asarray(reference[:n], dtype=np.float64)
    scale = np.sqrt(np.abs(ref) * abs(ref[0])) if n else ref
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(run - ref) / np.maximum(np.abs(ref), scale)


def judge(losses, reference, dtype: str) -> Verdict:
    """ok when every step is within TOLERANCE[dtype]; a NaN/inf loss is never a match."""
    bad = first_non_finite(losses)
    if bad is not None:
        return Verdict("diverged", None, bad, f"diverged at step {bad}: loss is {losses[bad - 1]}")
    if len(losses) != len(reference):
        return Verdict("mismatch", None, None, f"ran {len(losses)} steps, the reference ran {len(reference)}")
    if not losses:
        return Verdict("mismatch", None, None, "no steps ran")
    errors = relative_errors(losses, reference, dtype)
    if not np.all(np.isfinite(errors)):
        k = int(np.argmin(np.isfinite(errors))) + 1
        return Verdict("mismatch", math.inf, k, f"the reference diverged at step {k}; this run did not")
    worst = int(np.argmax(errors))
    max_err = float(errors[worst])
    tol = TOLERANCE[dtype]
    if max_err <= tol:
        return Verdict("ok", max_err, worst + 1)
    return Verdict("mismatch", max_err, worst + 1,
                   f"step {worst + 1}: relative error {max_err:.3g} > {tol:g} ({dtype} bound)")
