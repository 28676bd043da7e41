"""Cost as the work grows: the size ladder, and where framework overhead stops mattering."""

from __future__ import annotations

import dataclasses

from common.config import RunConfig
from common.figures import Figures
from common.report import markdown

# (N, D_in, H, D_out): from the lecture's size to sizes where matmuls dominate every step.
LADDER = (
    (64, 1000, 100, 10),  # 26 MFLOP per step: the lecture
    (128, 2048, 256, 32),
    (256, 4096, 512, 64),
    (512, 4096, 1024, 128),
    (1024, 8192, 1024, 128),  # 35 GFLOP per step
)
# A step within this factor of the compute floor spends most of its time in arithmetic.
COMPUTE_BOUND_X_FLOOR = 2.0


def stable_lr(lr: float, batch: int, d_in: int, hidden: int) -> float:
    """The lecture's lr (at the ladder's first size) for another size: it shrinks as N * D_in * H
    grows, which keeps SGD as stable as the lecture's step (the gradient's scale grows with the sizes)."""
    n, d, h, _ = LADDER[0]
    return lr * (n * d * h) / (batch * d_in * hidden)


def ladder_configs(cfg: RunConfig, steps: int) -> list[RunConfig]:
    """cfg at each ladder size, lr scaled by stable_lr."""
    return [dataclasses.replace(cfg, batch=n, d_in=d, hidden=h, d_out=o, steps=steps, lr=stable_lr(cfg.lr, n, d, h),
                                warmup=min(cfg.warmup, max(steps - 2, 0))).validate()
            for n, d, h, o in LADDER]


def size_label(f: Figures) -> str:
    return f"{f.batch}x{f.d_in}x{f.hidden}x{f.d_out}"


def crossovers(points: list[Figures]) -> dict[str, Figures | None]:
    """Per run: the first ladder point whose step is within COMPUTE_BOUND_X_FLOOR of the floor."""
    found: dict[str, Figures | None] = {}
    for f in sorted(points, key=lambda f: f.flops_per_step or 0):
        key = f"{f.framework}/{f.variant}/{f.device}"
        found.setdefault(key, None)
        if found[key] is None and f.x_floor and f.x_floor <= COMPUTE_BOUND_X_FLOOR:
            found[key] = f
    return found


def gpu_wins(points: list[Figures]) -> dict[str, tuple[Figures, float] | None]:
    """Per framework/variant with both devices timed: the first size where the GPU step is faster."""
    by_key: dict[tuple, Figures] = {(f.framework, f.variant, f.flops_per_step, f.device): f
                                 for f in points if f.median_s}
    wins: dict[str, tuple[Figures, float] | None] = {}
    for (fw, var, flops, dev), f in sorted(by_key.items(), key=lambda kv: kv[0][2]):
        cpu = by_key.get((fw, var, flops, "cpu"))
        if dev != "gpu" or cpu is None:
            continue
        key = f"{fw}/{var}"
        wins.setdefault(key, None)
        if wins[key] is None and f.median_s < cpu.median_s:
            wins[key] = (f, cpu.median_s / f.median_s)
    return wins


def overall_crossover(points: list[Figures]) -> Figures | None:
    """The first size from which every timed run is within COMPUTE_BOUND_X_FLOOR of the floor."""
    sizes = sorted({f.flops_per_step for f in points if f.median_s})
    for i, flops in enumerate(sizes):
        later = [f for f in points if f.median_s and f.flops_per_step >= flops]
        if all(f.x_floor and f.x_floor <= COMPUTE_BOUND_X_FLOOR for f in later):
            return min((f for f in points if f.flops_per_step == flops), key=lambda f: f.x_floor)
    return None


def summary(points: list[Figures]) -> list[str]:
    overall = overall_crossover(points)
    lines = [f"crossover: from {size_label(overall)} ({overall.flops_per_step / 1e9:.2f} GFLOP/step) on, every "
             f"implementation is within {COMPUTE_BOUND_X_FLOOR:g}x of the compute floor (the best library's peak)"
             if overall else
             f"crossover: not reached; some implementation is over {COMPUTE_BOUND_X_FLOOR:g}x the compute floor (the "
             "best library's peak) at the largest size"]
    lines += kernel_lines(points)
    for key, f in crossovers(points).items():
        if f is None:
            lines.append(f"{key}: overhead still matters at the largest size (never within "
                         f"{COMPUTE_BOUND_X_FLOOR:g}x of the compute floor)")
        else:
            lines.append(f"{key}: overhead stops mattering at {size_label(f)} "
                         f"({f.flops_per_step / 1e9:.2f} GFLOP/step, {f.x_floor:.1f}x floor)")
    for key, win in gpu_wins(points).items():
        lines.append(f"{key}: the GPU " + (f"starts to win at {size_label(win[0])} ({win[1]:.1f}x)" if win
                                           else "never wins within the ladder"))
    return lines + memory_lines(points)


def kernel_lines(points: list[Figures]) -> list[str]:
    """At the largest size: what sets the step time there, the kernels a framework calls (x kernels)
    or what it does around them (x overhead), judged by which spreads the runs further apart."""
    sizes = [f.flops_per_step for f in points if f.x_kernels and f.x_overhead]
    if not sizes:
        return []
    largest = [f for f in points if f.flops_per_step == max(sizes) and f.x_kernels and f.x_overhead]
    kernels, overhead = [f.x_kernels for f in largest], [f.x_overhead for f in largest]
    which = ("which library's kernels a framework calls" if max(kernels) / min(kernels) > max(overhead) / min(overhead)
             else "what each framework does around its kernels")
    runs = ", ".join(f"{f.framework}/{f.label} {f.x_kernels:.2f} x {f.x_overhead:.2f}"
                     for f in sorted(largest, key=lambda f: f.x_kernels * f.x_overhead))
    return [f"at {size_label(largest[0])}, x shape floor = x kernels x x overhead: {runs}; {which} sets the step "
            "time there"]


def memory_lines(points: list[Figures]) -> list[str]:
    """Per size: common/config.py's estimate of what a run holds (which refuses sizes too big)
    against what the runs held beyond their framework's import (peak - import resident MB)."""
    lines = []
    for flops in sorted({f.flops_per_step for f in points if f.flops_per_step}):
        held = [f.peak_mb - f.import_mb for f in points
                if f.flops_per_step == flops and f.peak_mb is not None and f.import_mb is not None]
        size = next(f for f in points if f.flops_per_step == flops)
        if not held or size.config is None:
            continue
        estimate = size.config.run_bytes() / 2**20
        lines.append(f"memory at {size_label(size)}: estimate {estimate:,.0f} MB, runs held {min(held):,.0f}-"
                     f"{max(held):,.0f} MB beyond their framework's import (the most {max(held) / estimate:.2f}x "
                     "the estimate)")
    return lines


def sweep_markdown(points: list[Figures]) -> str:
    """Runs down, sizes across: each cell the median step and, in brackets, its x floor (and x
    shape floor, where the results have one)."""
    sizes = sorted({f.flops_per_step for f in points if f.flops_per_step})
    label = {f.flops_per_step: size_label(f) for f in points}
    runs = list(dict.fromkeys(f"{f.framework}/{f.label}/{f.device}" for f in points))
    cell = {(f"{f.framework}/{f.label}/{f.device}", f.flops_per_step): f for f in points}
    rows = [["run"] + [label[s] for s in sizes], ["GFLOP/step"] + [f"{s / 1e9:.3f}" for s in sizes]]
    for run in runs:
        cells = []
        for s in sizes:
            f = cell.get((run, s))
            if f is None or f.median_s is None:
                cells.append(f.status if f else "")
                continue
            shape = f", {f.x_shape_floor:.1f}x shape" if f.x_shape_floor else ""
            floor = f" ({f.x_floor:.1f}x{shape})" if f.x_floor else ""
            cells.append(f"{f.median_s * 1e3:.3g} ms{floor}")
        rows.append([run] + cells)
    return markdown(rows)
