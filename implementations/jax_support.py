"""The plumbing of JAX runs (JAX itself, Keras on jax): device, threads, profiler.

Kept out of the implementation files so that they hold only the lecture's code.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import jax
import numpy as np

from common.config import RunConfig


def device(cfg: RunConfig):
    """The run's JAX device; NotImplementedError (a skip) when there is no such device."""
    if cfg.device == "cpu":
        return jax.devices("cpu")[0]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        raise NotImplementedError("no CUDA device visible to JAX")
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32: the check is float32's
    return gpus[0]


def compute_dtype(cfg: RunConfig):
    """The matmuls' dtype under --precision bf16-mixed (bfloat16, the weights staying float32); None: the run's dtype."""
    return jax.numpy.bfloat16 if cfg.precision == "bf16-mixed" else None


def fetch(losses: list) -> list:
    """Trainer.fetch: a block's losses off the device. On a CPU each loss is already host memory:
    np.asarray reads it in ~2 us, where jax.device_get's tree handling costs ~12 us a loss (measured
    here; at 25 losses per block that was 5-8% of the block). On an accelerator device_get starts
    every copy before waiting on any, so the block's losses cost one transfer's latency."""
    if losses and all(device.platform == "cpu" for device in losses[0].devices()):
        return [np.asarray(loss) for loss in losses]
    return jax.device_get(losses)


def bound_threads(threads: int, first_core: int = 0) -> str:
    """XLA:CPU has no thread setting of its own: it sizes its pools from the cores the process
    may use, so pinning the process to `threads` cores (from the `first_core`-th it may use: data-
    parallel workers take disjoint ones) is what bounds it. Says what was done."""
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > threads:
            start = first_core % len(cores)
            os.sched_setaffinity(0, (cores[start:] + cores[:start])[:threads])
    return affinity_note()


def start(cfg: RunConfig):
    """What every JAX run sets before it builds: its threads bounded (on the CPU), then its device,
    made the default, so that what a builder makes (a learning rate, Flax's layers) lives there too."""
    if cfg.device == "cpu":
        bound_threads(cfg.threads)
    on = device(cfg)
    jax.config.update("jax_default_device", on)
    return on


def affinity_note() -> str:
    """What bounds XLA:CPU's threads in this process: the cores it may use."""
    if not hasattr(os, "sched_getaffinity"):
        return "XLA:CPU threads not bounded (no CPU affinity on this platform)"
    return f"XLA:CPU bounded to {len(os.sched_getaffinity(0))} core(s) by CPU affinity"


@contextlib.contextmanager
def profile(folder: Path):
    """Trainer.profile for JAX: jax.profiler over what it wraps; its XSpace (kept under xplane/)
    converted to trace.json."""
    from implementations.xspace import write_trace_from

    logdir = folder / "xplane"
    with jax.profiler.trace(str(logdir)):
        yield
    write_trace_from(logdir, folder, "jax.profiler")


def hooks(on) -> dict:
    """The Trainer fields the harness reads from JAX on `on`: its profiler, the block clock's, since
    JAX dispatches asynchronously on every device (common.timing), and what bounds its threads."""
    return {"profile": profile, "asynchronous": True, "fetch": fetch,
            "note": affinity_note() if on.platform == "cpu" else None}
