"""Running one implementation: build it, time its steps, judge them; every failure a row.

The harness side of the contract: an implementation module gives build(cfg, problem, variant)
-> Trainer and nothing else; this module times it, records what it is, and releases it.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from common.config import RunConfig
from common.equivalence import judge
from common.memory import peak_rss_mb, rss_mb
from common.noise import Reference
from common.problem import Problem, make_problem
from common.result import RunResult
from common.timing import BLOCK_DATA_NOTE, Trainer, harness_cost as measure_cost, step_stats, time_steps

Build = Callable[[RunConfig, Problem, str], Trainer]


class Declared(Protocol):
    """What the runner needs of a registry entry (implementations.Implementation)."""

    name: str
    minibatch: tuple[str, ...]
    float32_only: str  # why it trains in float32 only ("": float64 too)

    def why_not_bf16(self, variant: str) -> str: ...

    def version_info(self) -> dict[str, str]: ...


def run_training(cfg: RunConfig, impl: Declared, variant: str, build: Build, problem: Problem | None = None,
                 save_weights: Path | None = None, artifacts: Path | None = None,
                 harness_cost: bool = False, profile: Path | None = None) -> RunResult | None:
    """Time build() (setup) and cfg.steps SGD steps of the Trainer it returns.

    With `save_weights`, the trained (w1, w2) are written there as .npz (untimed); with
    `artifacts`, the Trainer's save hook writes what it built into that folder. With
    `harness_cost`, what the per-step measurement costs, after training (measure_harness).
    With `profile` (a folder), the run is a profiled one instead (profiled_run). None for a
    data-parallel worker that does not report (rank 0 reports for all).
    """
    from threadpoolctl import threadpool_limits

    refuse_minibatch(cfg, variant, impl.minibatch_variants())
    if cfg.dtype != "float32" and impl.float32_only:
        raise NotImplementedError(impl.float32_only)
    if cfg.precision == "bf16-mixed" and impl.why_not_bf16(variant):
        raise NotImplementedError(impl.why_not_bf16(variant))
    problem = make_problem(cfg) if problem is None else problem
    # Caps the BLAS/OpenMP pools already loaded in this process (NumPy's among them), which
    # environment variables can no longer reach once the library is imported.
    with threadpool_limits(limits=cfg.worker_threads):
        start_ns = time.perf_counter_ns()
        trainer = build(cfg, problem, variant)
        build_s = (time.perf_counter_ns() - start_ns) * 1e-9
        build_mb = rss_mb()
        try:
            if profile is not None:
                return profiled_run(cfg, impl, variant, trainer, Path(profile))
            clock = time_steps(trainer, cfg.steps)
            note = "; ".join(filter(None, [trainer.note, BLOCK_DATA_NOTE if trainer.asynchronous and cfg.minibatch
                                           and not clock.data_times_s else ""]))
            result = new_result(cfg, impl.name, variant, versions=impl.version_info(), note=note)
            result.peak_mb, result.build_mb, result.build_s = peak_rss_mb(), build_mb, build_s
            if trainer.device_memory is not None:
                result.device_peak_mb = trainer.device_memory()
            result.losses, result.step_times_s, result.data_times_s = clock.losses, clock.times_s, clock.data_times_s
            result.first_step_s = result.step_times_s[0] if result.step_times_s else None
            result.setup_s = build_s + (result.first_step_s or 0.0)
            if trainer.collectives is not None:
                result.comm_s = trainer.collectives()
            if trainer.weights is not None and trainer.reports:
                # Copies: a framework's arrays may be views of buffers it frees once released
                result.final_weights = tuple(np.array(w, copy=True) for w in trainer.weights())
            if save_weights is not None and result.final_weights is not None:
                np.savez(save_weights, w1=result.final_weights[0], w2=result.final_weights[1])
            if artifacts is not None and trainer.save is not None:
                Path(artifacts).mkdir(parents=True, exist_ok=True)
                trainer.save(Path(artifacts))
            elif artifacts is not None:
                result.note = "; ".join(filter(None, [result.note, "it builds nothing to save but its weights"]))
            if harness_cost and trainer.reports:
                measure_harness(result, trainer, cfg, impl.harness_note(variant))
        finally:
            if trainer.close is not None:
                trainer.close()
    return result if trainer.reports else None


def profiled_run(cfg: RunConfig, impl: Declared, variant: str, trainer: Trainer, folder: Path) -> RunResult:
    """Step 1 and the warm-up unprofiled, then up to PROFILE_STEPS steps under the framework's
    profiler (Trainer.profile), which writes folder/trace.json; the result carries the breakdown."""
    from common.profiling import PROFILE_STEPS, TRACE, breakdown

    if trainer.profile is None:
        raise NotImplementedError(f"{impl.name}/{variant} has no profiler wired")
    folder.mkdir(parents=True, exist_ok=True)
    time_steps(trainer, min(1 + cfg.warmup, cfg.steps))
    with trainer.profile(folder):
        clock = time_steps(trainer, min(PROFILE_STEPS, cfg.steps))
    result = new_result(cfg, impl.name, variant, versions=impl.version_info(), note=trainer.note)
    result.losses, result.step_times_s = clock.losses, clock.times_s
    steps = len(clock.times_s)
    result.profile = breakdown(folder / TRACE, steps, sum(clock.times_s) / steps).to_dict()
    return result


def profile_line(result: RunResult) -> str:
    """A profiled run's breakdown in one line."""
    from common.profiling import Breakdown

    b = Breakdown.from_dict(result.profile)
    top = ", ".join(f"{name} {ms:.3f} ms" for name, ms in b.top)
    return (f"profile ({b.profiler}, {b.steps} steps): {b.step_ms:.3f} ms/step under the profiler, {b.ops:.1f} kernels "
            f"taking {b.kernel_ms:.3f} ms, overhead {b.overhead_ms:.3f} ms ({b.overhead_share:.0%}); top: {top}")


def measure_harness(result: RunResult, trainer: Trainer, cfg: RunConfig, harness_why: str = "") -> None:
    """What the per-step measurement costs this run (timing.harness_cost), measured after
    training: its losses and weights are recorded and judged already."""
    if len(result.losses) < cfg.steps:
        return  # stopped early (a non-finite loss): more steps would be noise
    try:
        measured = measure_cost(trainer, cfg.steps)
    except Exception as exc:  # the run itself is measured and judged: keep it, say what failed
        traceback.print_exc(file=sys.stderr)
        result.note = "; ".join(filter(None, [result.note, f"harness cost not measured: {type(exc).__name__}: {exc}"]))
        return
    if measured is not None:
        result.bare_step_s, result.harness_cost, result.harness_pair_costs = measured
        result.harness_why = harness_why


def refuse_minibatch(cfg: RunConfig, variant: str, supported: tuple[str, ...]) -> None:
    """The skip for a variant that trains on the lecture's one batch only."""
    if cfg.minibatch and variant not in supported:
        raise NotImplementedError(f"minibatch mode (--samples) is built for {', '.join(supported)}; "
                                  f"{variant} trains on the lecture's one batch only")


def new_result(cfg: RunConfig, framework: str, variant: str, **fields) -> RunResult:
    """The RunResult of a run of `cfg`, with what the config says about it filled in."""
    return RunResult(framework, variant, cfg.device, cfg.numerics, config=cfg.to_dict(), threads=cfg.threads,
                     feed=cfg.feed if cfg.minibatch else None, world_size=cfg.workers, **fields)


def skipped(cfg: RunConfig, framework: str, variant: str, reason: str) -> RunResult:
    """The row of a run that cannot run here (a missing package, device or feature), with the reason."""
    return new_result(cfg, framework, variant, status="skipped", error=reason)


def failed(cfg: RunConfig, framework: str, variant: str, reason: str) -> RunResult:
    """The row of a run that crashed, hung or gave no result, with the reason."""
    return new_result(cfg, framework, variant, status="failed", error=reason)


def run_guarded(cfg: RunConfig, impl: Declared, variant: str, build: Build, **outputs) -> RunResult | None:
    """run_training() with its failures turned into rows: NotImplementedError is a skip, anything else a failure."""
    try:
        return run_training(cfg, impl, variant, build, **outputs)
    except NotImplementedError as exc:
        return skipped(cfg, impl.name, variant, str(exc) or "not supported")
    except Exception as exc:  # a framework error must become a row, not a lost run
        traceback.print_exc(file=sys.stderr)
        return failed(cfg, impl.name, variant, f"{type(exc).__name__}: {exc}")


def apply_verdict(result: RunResult, reference: Reference) -> RunResult:
    """Set the status and the error figures from the comparison with the reference's losses and,
    when the run kept them, its final weights."""
    if result.status in ("skipped", "failed"):
        return result
    verdict = judge(result.losses, reference, result.dtype, result.final_weights)
    result.status, result.x_noise, result.worst_step = verdict.status, verdict.x_noise, verdict.worst_step
    result.max_rel_err, result.weights_x_noise = verdict.max_rel_err, verdict.weights_x_noise
    result.error = verdict.error
    return result


def summary_line(result: RunResult) -> str:
    head = f"{result.name}: {result.status}"
    if not result.ran or result.status == "failed":
        return f"{head} ({result.error})"
    parts = [head]
    if result.losses:
        parts.append(f"final loss {result.losses[-1]:.6g}")
    if result.x_noise is not None:
        parts.append(f"{result.x_noise:.2f}x noise at step {result.worst_step}")
    if result.weights_x_noise is not None:
        parts.append(f"weights {result.weights_x_noise:.2f}x noise")
    stats = step_stats(result.step_times_s, result.config.get("warmup", 0))
    if stats:
        parts.append(f"median step {stats.median_s * 1e3:.3f} ms (IQR {stats.iqr_s * 1e3:.3f})")
    if result.setup_s is not None:
        parts.append(f"setup {result.setup_s:.3f} s")
    if result.error:
        parts.append(result.error)
    return ", ".join(parts)
