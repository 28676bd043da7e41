"""Reporting: figures computed once per run, then the table, CSV, JSON and report.md read them."""

from __future__ import annotations

import csv
import functools
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from common.config import RunConfig
from common.equivalence import FACTOR, FLOOR_ULPS, WEIGHTS_FLOOR_ULPS
from common.result import SCHEMA_VERSION, RunResult
from common.figures import Figures
from common.profiling import table_rows
from common.noise import Reference
from common.roofline import floor_s, shape_key
from common.timing import NOISY_SPREAD
from common.yardstick import cpu_facts

COLUMNS = ("implementation", "variant", "device", "dtype", "final loss", "x noise", "@step", "w x noise", "match",
           "setup s", "import s", "to 1st step s", "median ms (IQR)", "95% CI ms", "steps/s", "x fastest",
           "GFLOP/s", "x floor",
           "x shape floor", "x kernels", "x overhead", "import MB", "peak MB", "GPU MB")
FEED_COLUMNS = ("data ms", "compute ms")  # shown when any run trained on minibatches
SCALING_COLUMNS = ("x 1 worker", "comm %", "efficiency")  # shown when any run was data-parallel
# The harness's per-step clock, callback or loss fetch costing more than this is said under the table.
HARNESS_COST_NOTE = 0.03
CSV_FIELDS = ("framework", "variant", "feed", "world_size", "device", "dtype", "batch", "d_in", "hidden", "d_out",
              "samples", "epochs", "flops_per_step", "data_median_s", "compute_median_s", "comm_s", "comm_share",
              "x_one_worker", "scaling_efficiency", "status", "final_loss", "x_noise", "worst_step", "weights_x_noise",
              "max_rel_err", "setup_s", "rounds", "timed_steps", "median_s", "iqr_s", "spread", "steps_per_s",
              "harness_cost", "harness_low", "harness_high", "median_low_s", "median_high_s", "x_fastest", "x_fastest_low", "x_fastest_high",
              "same_as_fastest", "gflops", "pct_peak", "floor_s", "x_floor", "shape_floor_s", "x_shape_floor",
              "kernels_s", "x_kernels", "x_overhead",
              "start_s", "build_s", "first_step_s", "to_first_step_s", "import_mb", "build_mb", "peak_mb",
              "device_peak_mb",
              "profile_step_ms", "profile_kernels", "profile_kernel_ms", "profile_overhead_ms", "profile_top",
              "profile_trace", "error")


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _table_row(f: Figures) -> dict[str, str]:
    """Every column's cell for one run, by column name; _columns picks those the table shows."""
    row = dict(zip(("implementation", "variant", "device", "dtype"), (f.framework, f.label, f.device, f.dtype)))
    if f.status in ("skipped", "failed"):
        return row | {"match": f.status}
    median = "" if f.median_s is None else (
        f"{f.median_s * 1e3:.3f} ({f.iqr_s * 1e3:.3f})" + (" ~" if f.noisy else ""))
    return row | {
        "final loss": _fmt(f.final_loss, ".6g"), "x noise": _error_cell(f), "@step": _fmt(f.worst_step, "d"),
        "w x noise": _fmt(f.weights_x_noise, ".2f"), "match": {"ok": "yes", "mismatch": "NO"}.get(f.status, f.status),
        "setup s": _fmt(f.setup_s, ".3f"), "median ms (IQR)": median,
        "harness %": _fmt(f.harness_cost and 100 * f.harness_cost, "+.1f"),
        "data ms": _fmt(f.data_median_s and f.data_median_s * 1e3, ".3f"),
        "compute ms": _fmt(f.compute_median_s and f.compute_median_s * 1e3, ".3f"),
        "x 1 worker": _fmt(f.x_one_worker, ".2f"), "comm %": _fmt(f.comm_share and 100 * f.comm_share, ".0f"),
        "efficiency": _fmt(f.scaling_efficiency and 100 * f.scaling_efficiency, ".0f"),
        "95% CI ms": "" if f.median_low_s is None else f"{f.median_low_s * 1e3:.3f}-{f.median_high_s * 1e3:.3f}",
        "steps/s": _fmt(f.steps_per_s, ",.0f"), "x fastest": _x_fastest_cell(f), "GFLOP/s": _fmt(f.gflops, ".1f"),
        "x floor": _fmt(f.x_floor, ".1f"), "x shape floor": _fmt(f.x_shape_floor, ".1f"),
        "x kernels": _fmt(f.x_kernels, ".2f"), "x overhead": _fmt(f.x_overhead, ".2f"),
        "import s": _fmt(f.start_s, ".2f"), "to 1st step s": _fmt(f.to_first_step_s, ".2f"),
        "import MB": _fmt(f.import_mb, ",.0f"), "peak MB": _fmt(f.peak_mb, ",.0f"),
        "GPU MB": _fmt(f.device_peak_mb, ",.0f")}


def _x_fastest_cell(f: Figures) -> str:
    """The ratio, its 95% interval, and "=" when that interval holds 1 (indistinguishable from the fastest)."""
    if f.x_fastest is None:
        return ""
    if f.x_fastest_low is None or f.x_fastest == 1.0:
        return f"{f.x_fastest:.2f}"
    return f"{f.x_fastest:.2f} ({f.x_fastest_low:.2f}-{f.x_fastest_high:.2f})" + (" =" if f.same_as_fastest else "")


def _error_cell(f: Figures) -> str:
    """x noise; a results file of schema version 1 has none, and shows its relative error instead."""
    if f.x_noise is not None:
        return f"{f.x_noise:.2f}"
    return "" if f.max_rel_err is None else f"rel {f.max_rel_err:.1e}"


def aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _harness_why(f: Figures) -> str:
    """The implementation's word (its registry entry, carried by its result) on why its harness cost is what it is."""
    return f"; {f.harness_why}" if f.harness_why else ""


def _harness_interval(f: Figures) -> str:
    """The cost's 95% interval over its pairs, and whether it holds 0 (the cost is not told from none)."""
    if f.harness_low is None:
        return ""
    return (f"95% CI {100 * f.harness_low:+.1f}% to {100 * f.harness_high:+.1f}%"
            + (", which holds 0" if f.harness_low <= 0 <= f.harness_high else "") + ", over its lapped/bare pairs, ")


def table_notes(rows: list[Figures]) -> list[str]:
    notes = [f"{f.name}: {f.error}" for f in rows if f.error]
    # a note is about the implementation: said once for all its feeds
    notes += [f"{f.framework}/{f.variant}: {f.note}" for f in rows if f.note and f.status == "ok"]
    notes += [f"{f.name}: the harness's per-step measurement {'costs' if f.harness_cost > 0 else 'saves'} "
              f"{abs(f.harness_cost):.1%} of its step ({_harness_interval(f)}against the same steps run with no "
              "per-step clock, callback or loss fetch)" + _harness_why(f)
              for f in rows if f.harness_cost is not None and abs(f.harness_cost) > HARNESS_COST_NOTE]
    if any(f.harness_cost is not None for f in rows):
        notes.append("harness %: the timed steps' mean over the same steps run with no per-step clock, callback or "
                     "loss fetch, minus 1 (blank: not measured, or every step ran in one call)")
    if any(f.x_kernels is not None for f in rows):
        notes.append("x shape floor = x kernels x x overhead: x kernels is the step's five matmuls and elementwise "
                     "work timed alone with the run's own framework's kernels, over the same work with the fastest "
                     "library's (the shape floor); x overhead is the run's step over its own kernels")
    if any(f.peak_mb is not None for f in rows):
        notes.append("import s: the run's process from its start to its framework imported (Python's start-up "
                     "included; NumPy's row is that baseline); to 1st step s: that + build + step 1; import MB, peak "
                     "MB: resident memory after the import, and at the most (VmHWM)")
    if any(f.median_low_s is not None for f in rows):
        notes.append("95% CI: of the median, and in brackets of x fastest, by bootstraps over blocks of neighbouring "
                     "steps and over whole rounds, the wider; = marks a run whose ratio's interval holds 1: it cannot "
                     "be told from the fastest")
    if any(f.noisy for f in rows):
        notes.append(f"~ IQR above {NOISY_SPREAD:.0%} of the median: that row's time is noisy, rerun before quoting it")
    return list(dict.fromkeys(notes))  # a sweep repeats each run's note at every size


def _columns(rows: list[Figures]) -> list[str]:
    """The table's columns: after the step's median, its harness cost (where measured), data
    and compute time (minibatch mode) and scaling (data-parallel); x shape floor where measured.
    A results file from before a column existed shows its table without it."""
    optional = {"harness %": any(f.harness_cost is not None for f in rows),
                "x shape floor": any(f.x_shape_floor is not None for f in rows),
                "x kernels": any(f.x_kernels is not None for f in rows),
                "x overhead": any(f.x_overhead is not None for f in rows),
                "import s": any(f.start_s is not None for f in rows),
                "to 1st step s": any(f.to_first_step_s is not None for f in rows),
                "import MB": any(f.import_mb is not None for f in rows),
                "peak MB": any(f.peak_mb is not None for f in rows),
                "GPU MB": any(f.device_peak_mb is not None for f in rows)}
    at = COLUMNS.index("median ms (IQR)") + 1
    extra = (FEED_COLUMNS if any(f.feed for f in rows) else ()) + (
        SCALING_COLUMNS if any(f.comm_s is not None for f in rows) else ())
    columns = list(COLUMNS[:at]) + ["harness %"] * optional["harness %"] + list(extra) + list(COLUMNS[at:])
    return [c for c in columns if optional.get(c, True)]


def _cells(rows: list[Figures]) -> list[list[str]]:
    columns = _columns(rows)
    return [columns] + [[_table_row(f).get(c, "") for c in columns] for f in rows]


def format_table(rows: list[Figures]) -> str:
    """One aligned text table; notes (errors, skips, noisy spreads) listed under it."""
    lines = aligned(_cells(rows))
    notes = table_notes(rows)
    if notes:
        lines += ["", "notes:"] + [f"  {n}" for n in notes]
    return "\n".join(lines)


def markdown_table(rows: list[Figures]) -> str:
    return markdown(_cells(rows))


def markdown(rows: list[list[str]]) -> str:
    """A header row and body rows as a Markdown table (a "|" inside a cell becomes "/")."""
    lines = ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines[:1] + ["|" + "---|" * len(rows[0])] + lines[1:])


PROFILE_INTRO = ("One extra run of each, under the framework's own profiler (never in the table above: profilers "
                 "perturb), per step: kernels executed, time inside them (their union), and the rest of the step as "
                 "the harness timed it under the profiler: framework, Python and dispatch overhead. Traces: "
                 "traces/<run>/trace.json, which ui.perfetto.dev and chrome://tracing open.")


def profile_table(rows: list[Figures]) -> str:
    return "\n".join(aligned(table_rows(rows)))


def ratio_text(a: Figures, b: Figures) -> str:
    """a's median over b's, with the ratio's 95% interval and "=" when it holds 1."""
    from common.confidence import indistinguishable, ratio_interval

    text = f"{a.median_s / b.median_s:.2f}x"
    interval = ratio_interval(a.timed, b.timed) if a.timed and b.timed else None
    if interval is None:
        return text
    return text + f" ({interval[0]:.2f}-{interval[1]:.2f}{', =' if indistinguishable(interval) else ''})"


def feed_lines(rows: list[Figures]) -> list[str]:
    """Minibatch mode: each feed's step time as a ratio to the resident feed, per implementation,
    with its 95% interval ("=": the feeds cannot be told apart)."""
    steps = {(f.framework, f.variant, f.device, f.feed): f for f in rows if f.feed and f.median_s}
    lines = []
    for (framework, variant, device, feed), f in steps.items():
        if feed != "resident":
            continue
        ratios = [f"{other} {ratio_text(steps[(framework, variant, device, other)], f)}"
                  for other in ("copy", "prefetch", "disk") if (framework, variant, device, other) in steps]
        data_share = (f" (data {f.data_median_s / f.median_s:.0%} of resident's step)"
                      if f.data_median_s else "")
        if ratios:
            lines.append(f"feed cost {framework}/{variant}/{device}: step time vs resident: {', '.join(ratios)}"
                         f"{data_share}")
    return lines


def scaling_lines(rows: list[Figures]) -> list[str]:
    """Data-parallel: each engine's W-worker step against its 1-worker step."""
    lines = []
    for f in rows:
        if f.world_size > 1 and f.scaling_efficiency is not None:
            threads = f"{f.world_size} workers sharing the threads"
            lines.append(f"scaling {f.framework}/{f.variant}/{f.device}: {threads}, step time "
                         f"{f.x_one_worker:.2f}x one worker's, collectives {f.comm_share:.0%} of the step "
                         f"(timed alone), efficiency {f.scaling_efficiency:.0%} (100% = W times faster)")
    return lines


def fastest_line(rows: list[Figures]) -> str | None:
    """The fastest run and every run that cannot be told from it, instead of a ranking of noise."""
    timed = [f for f in rows if f.median_s]
    if len({f.flops_per_step for f in timed}) != 1:
        return None  # a sweep: each size has its own fastest (the table marks them)
    best = min(timed, key=lambda f: f.median_s)
    same = [f.name for f in timed if f.same_as_fastest]
    interval = (f" (95% CI {best.median_low_s * 1e3:.3f}-{best.median_high_s * 1e3:.3f})"
                if best.median_low_s is not None else "")
    tail = (f"; indistinguishable from it (the 95% interval of their ratio holds 1): {', '.join(same)}" if same
            else "; every other run is slower beyond its 95% interval")
    return f"fastest: {best.name}, median {best.median_s * 1e3:.3f} ms{interval}{tail}"


def verdict(results: list[RunResult]) -> tuple[bool, str]:
    """(all runs that ran matched, one line saying so)."""
    ran = [r for r in results if r.status != "skipped"]
    bad = [r for r in ran if r.status != "ok"]
    skipped = len(results) - len(ran)
    tail = f"; {skipped} skipped" if skipped else ""
    if not ran:
        return False, f"verdict: nothing ran{tail}"
    if bad:
        names = ", ".join(f"{r.name} ({r.status})" for r in bad)
        return False, f"verdict: {len(bad)} of {len(ran)} runs did NOT match the NumPy reference: {names}{tail}"
    factors = sorted({FACTOR[r.dtype] for r in ran})
    if all(r.x_noise is None for r in ran):  # a results file of schema version 1
        return True, f"verdict: all {len(ran)} runs match the NumPy reference on every step{tail}"
    return True, (f"verdict: all {len(ran)} runs match the NumPy reference on every step and in their final "
                  f"weights, within {'/'.join(f'{x:g}' for x in factors)}x the rounding noise of correct runs{tail}")


def gpu_name() -> str | None:
    """The GPU's name from nvidia-smi, without importing any framework; None when there is none."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


@functools.lru_cache(maxsize=1)
def machine_info() -> dict:
    """CPU, cores, GPU, Python: read once per process (results.json is rewritten after every run)."""
    facts = cpu_facts()
    cpu = facts.get("name") or platform.processor() or platform.machine()
    # "AMD EPYC" names two CPU generations with twice the FLOPs per cycle between them: the family
    # and model tell results made on one from results made on the other
    model = (f"{facts['vendor']} family {facts['family']} model {facts['model']}"
             if {"vendor", "family", "model"} <= set(facts) else None)
    return {"cpu": cpu, "cpu_model": model, "cores": os.cpu_count(), "gpu": gpu_name(),
            "python": platform.python_version(), "platform": platform.platform()}


def results_document(cfg: RunConfig, results: list[RunResult], measurement: dict | None = None) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "config": cfg.to_dict(),
        "machine": machine_info(),
        "measurement": measurement or {},
        "equivalence": {"factor": FACTOR, "floor_ulps": FLOOR_ULPS, "weights_floor_ulps": WEIGHTS_FLOOR_ULPS},
        "runs": [r.to_dict() for r in results],
    }


def write_json_atomic(path: Path, document: dict) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(document, f, indent=1, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_csv(path: Path, rows: list[Figures]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(row.as_dict() for row in rows)


def header(cfg: RunConfig, measurement: dict) -> str:
    data = (f"M={cfg.samples} samples, {cfg.epochs} epoch(s) of {cfg.steps_per_epoch} shuffled batches = "
            if cfg.minibatch else "")
    return (f"N={cfg.batch} D_in={cfg.d_in} H={cfg.hidden} D_out={cfg.d_out} ({cfg.flops_per_step() / 1e6:.2f} "
            f"MFLOP/step), {data}{cfg.steps} steps, lr={cfg.lr:g}, {cfg.dtype}, seed {cfg.seed}, "
            f"{cfg.threads} threads; "
            f"{measurement['rounds']} interleaved rounds, median and IQR over every round's steps after step 1 + "
            f"{cfg.warmup} warm-up; peak matmul {measurement['peak_gflops']:.0f} GFLOP/s ({cfg.dtype}, "
            f"{_peak_source(measurement)}), compute floor {floor_s(cfg, measurement['peak_gflops']) * 1e3:.3f} "
            f"ms/step{shape_text(cfg, measurement)}")


def _peak_source(measurement: dict) -> str:
    """Which library set the peak: the best of those measured, or (older results) NumPy's BLAS alone."""
    library = measurement.get("peak_library")
    if library is None:
        return "NumPy BLAS"
    timed = [f for f in measurement["libraries"].values() if "error" not in f]
    return f"{library}'s, the best of {len(timed)} libraries"


def shape_text(cfg: RunConfig, measurement: dict) -> str:
    """The shape floor of cfg's size, as the header says it (empty for results without one)."""
    shape = (measurement.get("shape_floors") or {}).get(shape_key(cfg))
    if not shape:
        return ""
    total = shape["matmul_s"] + shape["elementwise_s"]
    whose = f"{shape['library']}'s kernels, the fastest" if "library" in shape else "NumPy"
    return (f", shape floor {total * 1e3:.3f} ms/step (this step's five matmuls {shape['matmul_s'] * 1e3:.3f} ms + "
            f"its elementwise work {shape['elementwise_s'] * 1e3:.3f} ms, {whose}, best of k)")


def yardstick_lines(measurement: dict) -> list[str]:
    """Under the table: every library's peak and what it calls, the theoretical peak, the
    environment variables that hold a library back, the libraries that could not be timed."""
    libraries = measurement.get("libraries")
    if not libraries:
        return []
    timed = sorted((f for f in libraries.values() if "error" not in f), key=lambda f: -f["peak_gflops"])
    first = timed[0]
    passes = measurement.get("passes", 1)
    when = " in each of 2 passes, before and after the runs (each pass in brackets), the better kept" * (passes > 1)
    lines = [f"peak matmul ({first['peak_size']}^3 {first['dtype']}, {first['threads']} threads, best of 5{when}, each "
             "library in its own process): " + ", ".join(f"{f['library']} {f['peak_gflops']:.0f}" + (
                 f" ({'/'.join(f'{p:.0f}' for p in f['passes'])})" if "passes" in f else "") for f in timed)
             + " GFLOP/s; " + "; ".join(f"{f['library']}: {f['calls']}" for f in timed)]
    theory = measurement.get("theoretical") or {}
    if theory.get("gflops"):
        lines.append(f"theoretical peak: {theory['gflops']:.0f} GFLOP/s ({theory['how']}); measured "
                     f"{measurement['peak_gflops'] / theory['gflops']:.0%} of it")
    elif theory:
        lines.append(f"theoretical peak: {theory['why']}")
    lines += measurement.get("kernel_env") or []
    lines += [f"{f['library']}: its kernels were not timed ({f['error']})" for f in libraries.values() if "error" in f]
    return lines


def timer_line(rows: list[Figures], measurement: dict) -> str:
    fastest = min((f.median_s for f in rows if f.median_s), default=None)
    cost = measurement["timer_overhead_s"]
    if fastest is None:
        return f"timer: {cost * 1e6:.2f} us per step"
    share = cost / fastest
    warn = "" if share < 0.01 else "  WARNING: over 1% of the fastest step, its times are inflated"
    return f"timer: {cost * 1e6:.2f} us per step, {share:.2%} of the fastest step{warn}"


def gpu_line(rows: list[Figures], devices: list[str]) -> str | None:
    """CPU vs GPU per implementation, or one line saying why there is no such comparison."""
    if "gpu" not in devices:
        return None
    cpu = {(f.framework, f.label): f for f in rows if f.device == "cpu" and f.median_s}
    gpu = {(f.framework, f.label): f for f in rows if f.device == "gpu" and f.median_s}
    pairs = [(k, ratio_text(cpu[k], gpu[k])) for k in gpu if k in cpu]
    if not gpu:
        return "CPU vs GPU: no GPU run here (no CUDA device visible to the frameworks); GPU rows are skipped"
    if not pairs:
        return "CPU vs GPU: run with --device all to see GPU/CPU speedups"
    return ("GPU/CPU speedup (CPU median / GPU median, 95% interval, = when it holds 1): "
            + ", ".join(f"{fw}/{v} {x}" for (fw, v), x in pairs))


def write_reports(out: Path, cfg: RunConfig, results: list[RunResult], rows: list[Figures],
                  references: dict[str, Reference] | None,
                  measurement: dict, lines: list[str], sweep: bool = False) -> None:
    """results.json, results.csv, the plots and report.md embedding them (with `sweep`, the sweep plot too)."""
    from common import plots  # matplotlib loads only when a report is written

    write_json_atomic(out / "results.json", results_document(cfg, results, measurement))
    write_csv(out / "results.csv", rows)
    lecture = [r for r in results if RunConfig.from_dict(r.config).flops_per_step() == cfg.flops_per_step()]
    plots.step_time([f for f in rows if f.flops_per_step == cfg.flops_per_step()], out / "step_time.png")
    images = ["step_time.png"]
    if references:  # None: no run of the header's size to draw
        plots.loss_curves(lecture, references, out / "loss_curves.png")
        images.insert(0, "loss_curves.png")
    if sweep:
        plots.sweep(rows, measurement["peak_gflops"], out / "sweep.png")
        images.append("sweep.png")
        if any(f.peak_mb is not None for f in rows):
            plots.sweep_memory(rows, out / "sweep_memory.png")
            images.append("sweep_memory.png")
    machine = machine_info()
    made_by = [f"Made by `{measurement['command']}`.\n"] if measurement.get("command") else []
    md = ["# fourways results\n", *made_by, f"{header(cfg, measurement)}\n",
          f"Machine: {machine['cpu']}" + (f" ({machine['cpu_model']})" if machine.get("cpu_model") else "")
          + f", {machine['cores']} cores, GPU: {machine['gpu'] or 'none'}, "
          f"Python {machine['python']}\n", markdown_table(rows), ""]
    md += [f"- {line}" for line in lines + table_notes(rows)]
    if any(f.profile for f in rows):
        md += ["", "## Where the time goes", "", PROFILE_INTRO, "", markdown(table_rows(rows))]
    md += [""] + [f"![{name}]({name})\n" for name in images]
    (out / "report.md").write_text("\n".join(md))
