"""The only source of data and initial weights: one seeded generator for every implementation."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from common.config import RunConfig


class Problem(NamedTuple):
    x: np.ndarray  # (N, D_in); in minibatch mode the dataset, (M, D_in)
    y: np.ndarray  # (N, D_out); (M, D_out)
    w1: np.ndarray  # (D_in, H)
    w2: np.ndarray  # (H, D_out)


class Start(NamedTuple):
    """What build hands every variant's builder, whose one signature is build_<variant>(cfg, start):
    the lecture's x, y, w1, w2 as the framework holds them when training starts, and where.

    x and y are None in minibatch mode, where the feed brings each step's batch. `problem` is the
    shared NumPy original (its shapes and dtype; never written). `device` is the framework's own
    handle of where the arrays live and run: a torch.device, a TF device name or distribution
    strategy, a JAX device or mesh, ONNX Runtime's workspace, Keras' device scope.
    """

    x: Any
    y: Any
    w1: Any
    w2: Any
    problem: Problem
    device: Any


def place(cfg: RunConfig, problem: Problem, device: Any, put: Callable[[np.ndarray], Any]) -> Start:
    """The Start of a run on `device`: `put` (the framework's copy onto it) applied to w1, w2 and,
    unless the feed brings the batches, to x and y."""
    x, y = (None, None) if cfg.minibatch else (put(problem.x), put(problem.y))
    return Start(x, y, put(problem.w1), put(problem.w2), problem, device)


def make_problem(cfg: RunConfig) -> Problem:
    """x, y, w1, w2 drawn standard normal from `cfg.seed`, in `cfg.dtype`.

    Drawn in float64 and then cast, so a float32 run starts from the rounded float64 values
    and both dtypes describe the same problem.
    """
    rng = np.random.default_rng(cfg.seed)
    shapes = ((cfg.rows, cfg.d_in), (cfg.rows, cfg.d_out), (cfg.d_in, cfg.hidden), (cfg.hidden, cfg.d_out))
    arrays = (np.ascontiguousarray(rng.standard_normal(s).astype(cfg.dtype)) for s in shapes)
    return Problem(*arrays)


def make_serving_batch(cfg: RunConfig) -> np.ndarray:
    """Fresh inputs for a deployed model: (N, D_in) standard normal, from its own seeded stream.

    Not the training batch: the trained net fits y through ~400x cancellation between its
    terms there, so float32 round-off in any two runtimes differs by ~1e-4 of the output;
    on new inputs the outputs are well conditioned (~4e-7 float32 vs float64).
    """
    rng = np.random.default_rng([cfg.seed, 1])
    return np.ascontiguousarray(rng.standard_normal((cfg.batch, cfg.d_in)).astype(cfg.dtype))
