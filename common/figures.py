"""Figures: every number the reports show about one run, computed once, in this one place.

The console table, the CSV, report.md, the plots and the sweep's summary all read these rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from common.config import RunConfig
from common.confidence import indistinguishable, median_interval, median_of_values_interval, ratio_interval
from common.profiling import Breakdown
from common.result import COSTS, RunResult
from common.roofline import achieved_gflops, floor_s, shape_key
from common.timing import step_stats


@dataclass
class Figures:
    """One run as the reports see it: what ran, its verdict, and its statistics (None: not timed)."""

    framework: str
    variant: str
    label: str  # the variant, with the feed and the worker count where they apply
    name: str  # framework/label/device/dtype
    device: str
    dtype: str
    status: str
    feed: str | None = None  # minibatch mode's feed; None: the lecture's batch
    world_size: int = 1  # data-parallel workers
    config: RunConfig | None = None  # sizes, steps, lr, ...: what the run was asked to do
    final_loss: float | None = None  # the last step's loss
    x_noise: float | None = None  # the worst step's error, in units of the rounding noise of correct runs ...
    worst_step: int | None = None  # ... that step, 1-based ...
    max_rel_err: float | None = None  # ... and its plain relative error
    weights_x_noise: float | None = None  # the final weights' error, in the same units
    setup_s: float | None = None  # build + step 1, median over the rounds
    # start-up and memory (medians over the rounds; None where not measured)
    start_s: float | None = None  # process start to framework imported (interpreter start-up included)
    build_s: float | None = None
    first_step_s: float | None = None
    to_first_step_s: float | None = None  # start_s + build_s + first_step_s
    import_mb: float | None = None  # resident after the import
    build_mb: float | None = None  # ... after build(), before step 1
    peak_mb: float | None = None  # ... at the most (VmHWM after the timed steps)
    device_peak_mb: float | None = None  # the framework's own peak on a GPU
    rounds: int = 0
    timed_steps: int = 0  # over every round, after step 1 and the warm-up
    median_s: float | None = None  # the step time quoted
    iqr_s: float | None = None  # its spread ...
    spread: float | None = None  # ... as a share of the median
    noisy: bool = False  # spread above NOISY_SPREAD
    harness_why: str = ""  # RunResult.harness_why
    harness_cost: float | None = None  # the timed steps' mean over the same steps with no per-step clock, - 1
    harness_low: float | None = None  # its 95% interval, from its lapped/bare pairs
    harness_high: float | None = None
    steps_per_s: float | None = None  # 1 / median
    median_low_s: float | None = None  # the median's 95% interval (block bootstrap, common.confidence)
    median_high_s: float | None = None
    x_fastest: float | None = None  # median over the fastest median of the same size ...
    x_fastest_low: float | None = None  # ... and that ratio's 95% interval
    x_fastest_high: float | None = None
    same_as_fastest: bool = False  # the ratio's interval holds 1: indistinguishable from the fastest
    gflops: float | None = None  # the five matmuls' FLOPs / median
    pct_peak: float | None = None  # gflops as a percentage of the machine's peak matmul rate
    floor_s: float | None = None  # the step's FLOPs at that peak: the compute floor
    x_floor: float | None = None  # median over the floor
    shape_floor_s: float | None = None  # the step's five matmuls and elementwise work, the fastest library's kernels
    x_shape_floor: float | None = None  # median over it (= x_kernels * x_overhead, where both are known)
    kernels_s: float | None = None  # the same work with this run's own framework's kernels, best of k
    x_kernels: float | None = None  # kernels_s over the shape floor: what its library's kernels cost against the best
    x_overhead: float | None = None  # median over kernels_s: what its step spends outside its own kernels
    data_median_s: float | None = None  # minibatch mode: getting the batch
    compute_median_s: float | None = None  # minibatch mode: the rest of the step
    comm_s: float | None = None  # data-parallel: one step's collectives, timed alone
    comm_share: float | None = None  # comm_s over the median
    x_one_worker: float | None = None  # median over the same engine's on one worker
    scaling_efficiency: float | None = None  # T1 / (W x TW): 1 is W times faster
    profile: Breakdown | None = None  # --profile: the extra profiled run's per-step breakdown
    # every round's timed steps, for the intervals of ratios to other runs (not a figure: never written)
    timed: list | None = field(default=None, repr=False)
    error: str | None = None  # why it was skipped or failed, or what did not match
    note: str | None = None  # how to read its times, when that differs from the others

    # The sizes, read from the config (None for a row without one).
    batch = property(lambda self: self._size("batch"))
    d_in = property(lambda self: self._size("d_in"))
    hidden = property(lambda self: self._size("hidden"))
    d_out = property(lambda self: self._size("d_out"))
    epochs = property(lambda self: self._size("epochs"))

    def _size(self, name: str) -> int | None:
        return getattr(self.config, name) if self.config else None

    @property
    def samples(self) -> int | None:
        return self.config.samples if self.config and self.config.minibatch else None

    @property
    def flops_per_step(self) -> int | None:
        return self.config.flops_per_step() if self.config else None

    def as_dict(self) -> dict:
        """Every figure by name, the sizes included (the CSV's row)."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("config", "profile", "timed")}
        sizes = ("batch", "d_in", "hidden", "d_out", "samples", "epochs", "flops_per_step")
        b = self.profile
        profiled = {} if b is None else {
            "profile_step_ms": b.step_ms, "profile_kernels": b.ops, "profile_kernel_ms": b.kernel_ms,
            "profile_overhead_ms": b.overhead_ms, "profile_top": "; ".join(f"{n} {ms:.4f}" for n, ms in b.top),
            "profile_trace": b.trace}
        return flat | {name: getattr(self, name) for name in sizes} | profiled


def figures(results: list[RunResult], peak_gflops: float | None, shape_floors: dict | None = None,
            kernels: dict | None = None, device: str = "cpu") -> list[Figures]:
    """Every number the reports show, per run. The yardstick (common.yardstick) is the `device`'s:
    peak_gflops, shape_floors by shape_key, and each framework's own kernels by shape_key."""
    rows = [_figures_of(r, peak_gflops, shape_floors or {}, (kernels or {}).get(r.framework, {}))
            if r.device == device else _figures_of(r, None, {}, {}) for r in results]
    fastest: dict = {}  # per problem size: a sweep's rows compare within their own size
    for row in rows:
        if row.median_s and (row.flops_per_step not in fastest or row.median_s < fastest[row.flops_per_step].median_s):
            fastest[row.flops_per_step] = row
    for row in rows:
        if not row.median_s:
            continue
        best = fastest[row.flops_per_step]
        row.x_fastest = row.median_s / best.median_s
        if row is best:
            row.x_fastest_low = row.x_fastest_high = 1.0
            continue
        interval = ratio_interval(row.timed, best.timed) if row.timed and best.timed else None
        if interval:
            row.x_fastest_low, row.x_fastest_high = interval
            row.same_as_fastest = indistinguishable(interval)
    _scaling(rows)
    return rows


def _figures_of(r: RunResult, peak_gflops: float | None, shape_floors: dict, own: dict) -> Figures:
    cfg = RunConfig.from_dict(r.config) if r.config else None
    warmup = r.config.get("warmup", 0)
    stats = step_stats(r.step_times_s, warmup, r.round_step_times_s or None)
    timed = stats is not None and r.status == "ok"
    f = Figures(framework=r.framework, variant=r.variant, label=r.label, name=r.name, device=r.device, dtype=r.dtype,
                status=r.status, feed=r.feed, world_size=r.world_size, config=cfg, comm_s=r.comm_s,
                final_loss=r.losses[-1] if r.losses else None, x_noise=r.x_noise, worst_step=r.worst_step,
                max_rel_err=r.max_rel_err, weights_x_noise=r.weights_x_noise,
                setup_s=r.setup_s, harness_cost=r.harness_cost, harness_why=r.harness_why,
                rounds=len(r.round_step_times_s) or (1 if r.step_times_s else 0),
                timed_steps=stats.n if stats else 0, error=r.error, note=r.note,
                profile=Breakdown.from_dict(r.profile) if r.profile else None)
    for name in COSTS:
        setattr(f, name, getattr(r, name, None))
    if len(r.harness_pair_costs) > 1:
        f.harness_low, f.harness_high = median_of_values_interval(r.harness_pair_costs) or (None, None)
    if None not in (f.start_s, f.build_s, f.first_step_s):
        f.to_first_step_s = f.start_s + f.build_s + f.first_step_s
    if not timed:
        return f
    if stats.median_s <= 0:  # no clock reads a step as taking no time: the laps were not timed apart
        f.error = f"the median of its {stats.n} timed steps is 0 s: its clock did not time them apart, so no speed is said"
        return f
    f.median_s, f.iqr_s, f.spread, f.noisy = stats.median_s, stats.iqr_s, stats.spread, stats.noisy
    f.timed = [times[1 + warmup:] for times in (r.round_step_times_s or [r.step_times_s])]
    interval = median_interval(f.timed)
    if interval:
        f.median_low_s, f.median_high_s = interval
    f.steps_per_s = 1 / stats.median_s
    if r.data_times_s:
        rounds = r.round_data_times_s or [r.data_times_s]
        f.data_median_s = step_stats([], warmup, rounds).median_s
        compute = [[t - d for t, d in zip(times, data)] for times, data in
                   zip(r.round_step_times_s or [r.step_times_s], rounds)]
        f.compute_median_s = step_stats([], warmup, compute).median_s
    if cfg and peak_gflops:
        f.gflops = achieved_gflops(cfg, stats.median_s)
        f.pct_peak = 100 * f.gflops / peak_gflops
        f.floor_s = floor_s(cfg, peak_gflops)
        f.x_floor = stats.median_s / f.floor_s
    shape = shape_floors.get(shape_key(cfg)) if cfg else None
    if shape:
        f.shape_floor_s = shape["matmul_s"] + shape["elementwise_s"]
        f.x_shape_floor = stats.median_s / f.shape_floor_s
    f.kernels_s = own.get(shape_key(cfg)) if cfg else None
    if f.kernels_s:
        f.x_overhead = stats.median_s / f.kernels_s
        f.x_kernels = f.kernels_s / f.shape_floor_s if f.shape_floor_s else None
    return f


def _scaling(rows: list[Figures]) -> None:
    """Data-parallel rows against the same engine on one worker: the fixed batch split W ways
    would ideally take 1/W of the time (efficiency = T1 / (W x TW))."""
    key = lambda f: (f.framework, f.variant, f.device, f.dtype, f.flops_per_step)  # noqa: E731
    one = {key(f): f.median_s for f in rows if f.world_size == 1 and f.median_s}
    for f in rows:
        base = one.get(key(f)) if f.comm_s is not None else None
        if base and f.median_s:
            f.comm_share = f.comm_s / f.median_s
            f.x_one_worker = f.median_s / base
            f.scaling_efficiency = base / (f.world_size * f.median_s)
