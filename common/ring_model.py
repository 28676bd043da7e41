"""When data parallelism pays: a ring all-reduce model of one step on W workers over links of bandwidth B.

A step on W workers, each with the cores one worker had: its compute on N/W rows, then the
gradient's all-reduce (no overlap: at these sizes DDP's one bucket is ready only when backward
ends). Compute has a part that shrinks with the rows and one that does not (the framework's
per-step dispatch): compute(W) = fixed + rows / W, both fitted to one worker's step on N and on
N/2 rows. A ring all-reduce of S bytes takes 2(W - 1) steps (reduce-scatter, all-gather), each
sending S/W bytes over every link and paying the link's fixed cost once:

    allreduce(W) = 2 (W - 1) (latency + S / (W B))        step(W) = compute(W) + allreduce(W)

speedup(W) = compute(1) / step(W), efficiency = speedup / W. The link's latency and bandwidth are
fitted to measured all-reduces on 2 workers at two message sizes: allreduce(2) = 2 latency + S / B.
"""

from __future__ import annotations

from dataclasses import dataclass

WORKER_COUNTS = (2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Link:
    """A link as the all-reduce sees it: a fixed cost per ring step, and bytes per second."""

    latency_s: float
    bytes_per_s: float


def allreduce_s(workers: int, nbytes: float, link: Link) -> float:
    if workers == 1:
        return 0.0
    return 2 * (workers - 1) * (link.latency_s + nbytes / workers / link.bytes_per_s)


def fit_link(points: list[tuple[float, float]]) -> Link:
    """The link from 2-worker all-reduce times [(bytes, seconds), ...] at two or more sizes:
    least squares of seconds = 2 latency + bytes / B. A negative latency (noise at the small size)
    is taken as 0 and B refitted through the origin."""
    if len({size for size, _ in points}) < 2:
        raise ValueError("fitting a link needs all-reduce times at two message sizes at least")
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in points)
             / sum((x - mean_x) ** 2 for x, _ in points))
    intercept = mean_y - slope * mean_x
    if intercept < 0:
        slope, intercept = sum(x * y for x, y in points) / sum(x * x for x, _ in points), 0.0
    if slope <= 0:
        raise ValueError("the all-reduce did not take longer for more bytes: no bandwidth to fit")
    return Link(latency_s=intercept / 2, bytes_per_s=1 / slope)


@dataclass(frozen=True)
class Compute:
    """One worker's step without communication: a fixed part and a part proportional to its rows."""

    fixed_s: float
    rows_s: float  # on all N rows

    def on(self, workers: int) -> float:
        return self.fixed_s + self.rows_s / workers


def fit_compute(full_s: float, half_s: float) -> Compute:
    """From one worker's step on N rows and on N/2: rows = 2 (full - half), fixed = full - rows,
    each kept >= 0 (noise can make the half-batch step look as slow as the full one, or slower)."""
    rows = min(max(2 * (full_s - half_s), 0.0), full_s)
    return Compute(fixed_s=full_s - rows, rows_s=rows)


@dataclass(frozen=True)
class Prediction:
    workers: int
    step_s: float
    comm_s: float
    speedup: float  # compute_1 / step: above 1, data parallelism pays

    @property
    def efficiency(self) -> float:
        return self.speedup / self.workers


def predict(compute: Compute, nbytes: float, link: Link, workers: int) -> Prediction:
    comm = allreduce_s(workers, nbytes, link)
    step = compute.on(workers) + comm
    return Prediction(workers, step, comm, compute.on(1) / step)


def pays_from(compute: Compute, nbytes: float, link: Link, counts=WORKER_COUNTS) -> int | None:
    """The fewest workers among `counts` whose step beats one worker's, None if none does."""
    return next((w for w in counts if predict(compute, nbytes, link, w).speedup > 1), None)


def best(compute: Compute, nbytes: float, link: Link, counts=WORKER_COUNTS) -> Prediction:
    """The worker count with the shortest step (more workers stop paying once the ring's
    2 (W - 1) latencies outgrow the compute they save)."""
    return max((predict(compute, nbytes, link, w) for w in counts), key=lambda p: p.speedup)


def bandwidth_to_pay(compute: Compute, nbytes: float, latency_s: float, workers: int) -> float | None:
    """The bandwidth (bytes/s) above which W workers beat one, at the given latency per ring step;
    None when the latencies alone eat all the compute that W workers save (no bandwidth is enough).
    From step(W) < compute(1): 2 (W - 1) / W * S / B < rows (1 - 1/W) - 2 (W - 1) latency."""
    saved = compute.rows_s * (1 - 1 / workers) - 2 * (workers - 1) * latency_s
    if saved <= 0:
        return None
    return 2 * (workers - 1) / workers * nbytes / saved
