"""Minibatches: the shuffle order every implementation follows, and the host side of the feed.

Feed modes (RunConfig.feed), the same meaning in every framework:
- resident: the whole dataset is put on the device before step 1; each batch is gathered there.
- copy:     the dataset stays in host memory; each step the framework's pipeline gathers the
            batch on the host and moves it to the device, in the step's critical path.
- prefetch: copy, with background workers preparing the next batches while the step computes.
- disk:     copy, with the dataset read from memory-mapped .npy files instead of memory.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from common.config import RunConfig
from common.problem import Problem

ORDER_STREAM = 2  # make_problem draws from seed; the serving batch from [seed, 1]; the order from [seed, 2, epoch]


def batch_order(cfg: RunConfig) -> np.ndarray:
    """Row indices of every step's batch, shape (steps, N): epoch e is a permutation drawn from
    (seed, e), cut into N-row batches (a last partial batch is dropped, as drop_last does)."""
    per_epoch = cfg.steps_per_epoch * cfg.batch
    epochs = [np.random.default_rng([cfg.seed, ORDER_STREAM, epoch]).permutation(cfg.samples)[:per_epoch]
              for epoch in range(cfg.epochs)]
    return np.concatenate(epochs).reshape(cfg.steps, cfg.batch).astype(np.int64)


def worker_rows(cfg: RunConfig, rank: int) -> slice:
    """A data-parallel worker's slice of every batch: N/W consecutive rows."""
    share = cfg.batch // cfg.workers
    return slice(rank * share, (rank + 1) * share)


def gather(x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One batch as contiguous in-memory arrays (also from a memory map)."""
    return np.ascontiguousarray(x[rows]), np.ascontiguousarray(y[rows])


def memory_mapped(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """x and y written to .npy files and mapped back read-only: the disk source.

    The files are unlinked once mapped (the mapping keeps them readable, nothing is left
    behind). They were just written, so reads come from the page cache, not the platter.
    """
    with tempfile.TemporaryDirectory(prefix="fourways-data-") as tmp:
        arrays = []
        for name, array in (("x", problem.x), ("y", problem.y)):
            path = Path(tmp) / f"{name}.npy"
            np.save(path, array)
            arrays.append(np.load(path, mmap_mode="r"))
            os.unlink(path)
    return tuple(arrays)


def worker_order(cfg: RunConfig, rank: int) -> np.ndarray:
    """A data-parallel worker's rows of every step's batch in the shared order, shape (steps, N/W):
    the W workers' rows together are the batch the single-process reference trains on."""
    return batch_order(cfg)[:, worker_rows(cfg, rank)]


def host_source(cfg: RunConfig, problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Where the feed reads the dataset on the host: the memory map for disk, memory otherwise."""
    return memory_mapped(problem) if cfg.feed == "disk" else (problem.x, problem.y)


def host_batches(x: np.ndarray, y: np.ndarray, order: np.ndarray, workers: int = 0) -> Iterator[tuple]:
    """NumPy batches in `order`; with workers, threads gather up to 2 per worker ahead of the step."""
    if not workers:
        for rows in order:
            yield gather(x, y, rows)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="fourways-prefetch") as pool:
        ahead = 2 * workers  # as DataLoader's default prefetch_factor
        pending = deque(pool.submit(gather, x, y, rows) for rows in order[:ahead])
        for rows in order[ahead:]:
            batch = pending.popleft().result()
            pending.append(pool.submit(gather, x, y, rows))
            yield batch
        while pending:
            yield pending.popleft().result()


def feed_batches(cfg: RunConfig, problem: Problem) -> Iterator[tuple]:
    """The host pipeline for frameworks without one of their own (NumPy, ONNX Runtime)."""
    x, y = host_source(cfg, problem)
    workers = cfg.loader_workers if cfg.feed == "prefetch" else 0
    return host_batches(x, y, batch_order(cfg), workers)
