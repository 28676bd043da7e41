"""The pictures: loss curves with their error against the reference, step times, the sweep.

matplotlib with the Agg backend (files only, no screen). Each plot reads the same figures as
the table (common/report.py); nothing here computes a statistic of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.equivalence import FACTOR, x_noise_per_step
from common.figures import Figures
from common.noise import Reference
from common.result import RunResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curves(results: list[RunResult], references: dict[str, Reference], path: Path) -> None:
    """Top: every run's loss per step (log). Bottom: its error in units of that step's rounding
    noise (log), with the factor a match must stay under. `references`: by the rows' dtype column
    (each precision compared has its own)."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    ran = [r for r in results if r.losses and r.dtype in references]
    for numerics, reference in references.items():
        steps = np.arange(1, len(reference.losses) + 1)
        top.semilogy(steps, reference.losses, color="black", linewidth=3, alpha=0.3,
                     label="NumPy reference" + (f" ({numerics})" if len(references) > 1 else ""))
    for r in ran:
        label = f"{r.framework}/{r.label}/{r.device}" + (f"/{r.dtype}" if len(references) > 1 else "")
        top.semilogy(np.arange(1, len(r.losses) + 1), r.losses, linewidth=1, label=label)
        ratios = x_noise_per_step(r.losses, references[r.dtype], r.dtype)
        bottom.semilogy(np.arange(1, len(ratios) + 1), np.maximum(ratios, 1e-3), linewidth=0.8, label=label)
    for dtype in sorted({r.dtype for r in ran}):
        bottom.axhline(FACTOR[dtype], color="red", linestyle="--", linewidth=1, label=f"{dtype} bound")
    top.set_title("Loss per step: every implementation over the NumPy reference")
    top.set_ylabel("loss = sum((y_pred - y)^2)")
    bottom.set_title("Error per step in units of the rounding noise of correct runs (floored at 1e-3 for the log axis)")
    bottom.set_ylabel("|loss - ref| / noise")
    bottom.set_xlabel("SGD step")
    top.legend(fontsize=7, ncol=2)
    bottom.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def step_time(rows: list[Figures], path: Path) -> None:
    """Median step time per run as bars, IQR as error bars, log scale."""
    plt = _pyplot()
    timed = [f for f in rows if f.median_s]
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(timed) + 1.5))
    labels = [f"{f.framework}/{f.label}/{f.device}" for f in timed]
    medians_ms = np.array([f.median_s * 1e3 for f in timed])
    iqr_ms = np.array([f.iqr_s * 1e3 for f in timed])
    ax.barh(labels, medians_ms, xerr=iqr_ms / 2, color="tab:blue", alpha=0.8, capsize=3)
    floors = [f.floor_s for f in timed]
    if floors and all(floors):
        ax.axvline(floors[0] * 1e3, color="red", linestyle="--", label="compute floor (peak matmul rate)")
        ax.legend()
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("median step time, ms (log scale; whisker: the IQR's width, centred on the median)")
    dtype = timed[0].dtype if timed else ""
    ax.set_title(f"Step time per implementation ({dtype}, lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _by_size(points: list[Figures], value, path: Path, ylabel: str, title: str, reference: tuple | None) -> None:
    """Log-log `value(f)` against FLOPs per step, one line per run; `reference`: (values per
    FLOPs, label) drawn as a dashed black line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    by_run: dict[str, list[Figures]] = {}
    for f in points:
        if value(f) is not None:
            by_run.setdefault(f"{f.framework}/{f.variant}/{f.device}", []).append(f)
    for label, series in by_run.items():
        series.sort(key=lambda f: f.flops_per_step)
        ax.loglog([f.flops_per_step for f in series], [value(f) for f in series], marker="o", label=label)
    if reference is not None:
        line, label = reference
        flops = sorted(line)
        if flops:
            ax.loglog(flops, [line[x] for x in flops], color="black", linestyle="--", linewidth=2, label=label)
    ax.set_xlabel("FLOPs per SGD step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sweep(points: list[Figures], peak_gflops: float, path: Path) -> None:
    """Log-log step time against FLOPs per step, one line per run, with the roofline."""
    flops = {f.flops_per_step for f in points if f.flops_per_step}
    _by_size(points, lambda f: f.median_s * 1e3 if f.median_s else None, path, "median step time, ms",
             "Cost as the work grows: overhead-bound on the left, compute-bound on the right",
             ({x: x / (peak_gflops * 1e9) * 1e3 for x in flops}, f"roofline: FLOPs / peak ({peak_gflops:.0f} GFLOP/s)"))


def sweep_memory(points: list[Figures], path: Path) -> None:
    """Log-log memory against FLOPs per step: what each run held beyond its framework (peak - import
    MB), one line per run, with common/config.py's estimate of what a run holds."""
    sizes = {f.flops_per_step: f.config for f in points if f.config is not None}
    _by_size(points, lambda f: (max(f.peak_mb - f.import_mb, 1e-3) if f.peak_mb is not None and f.import_mb is not None
                                else None), path, "peak resident MB - resident MB after the framework's import",
             "Memory as the work grows: what each run holds beyond its framework",
             ({x: cfg.run_bytes() / 2**20 for x, cfg in sizes.items()},
              "estimate (common/config.py run_bytes: working set + framework allowance)"))
