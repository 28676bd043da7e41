"""The only source of data and initial weights: one seeded generator for every implementation."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from common.config import RunConfig


class Problem(NamedTuple):
    x: np.ndarray  # (N, D_in)
    y: np.ndarray  # (N, D_out)
    w1: np.ndarray  # (D_in, H)
    w2: np.ndarray  # (H, D_out)


def make_problem(cfg: RunConfig) -> Problem:
    """x, y, w1, w2 drawn standard normal from `cfg.seed`, in `cfg.dtype`.

    Drawn in float64 and then cast, so a float32 run starts from the rounded float64 values
    and both dtypes describe the same problem.
    """
    rng = np.random.default_rng(cfg.seed)
    shapes = ((cfg.batch, cfg.d_in), (cfg.batch, cfg.d_out), (cfg.d_in, cfg.hidden), (cfg.hidden, cfg.d_out))
    arrays = (np.ascontiguousarray(rng.standard_normal(s).astype(cfg.dtype)) for s in shapes)
    return Problem(*arrays)
