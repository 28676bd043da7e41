"""One comparison run through: the reference, interleaved rounds, profiles, the sweep, and the report.

compare.py hands it a Plan (common.plan) and gets back the exit status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys

from common import hosts, noise, yardstick
from common.config import RunConfig
from common.figures import figures
from common.launch import THREAD_ENV, ForkServers, Stopped, exit_status, forked_module, run_one
from common.noise import Reference
from common.plan import Plan, Run, runs_of
from common.problem import make_problem
from common.report import (fastest_line, feed_lines, format_table, gpu_line, header, markdown_table, profile_table,
                           results_document, scaling_lines, timer_line, verdict, write_json_atomic, write_reports,
                           yardstick_lines)
from common.result import RunResult, merge_rounds, run_label
from common.roofline import shape_of
from common.runner import apply_verdict, skipped
from common.sweep import ladder_configs, summary, sweep_markdown
from common.timing import timer_overhead_s


def reference_for(cfg: RunConfig) -> Reference:
    """The reference run of `cfg` and the rounding noise every run is judged within."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=cfg.threads):
        return noise.measure(cfg, make_problem(cfg))


def references_for(cfg: RunConfig, precisions) -> dict[str, Reference]:
    """One reference per precision compared, keyed as the rows' dtype column names their numerics."""
    configs = [dataclasses.replace(cfg, precision=p) for p in precisions]
    return {c.numerics: reference_for(c) for c in configs}


def progress(done: int, total: int, label: str) -> None:
    """The bar (runs done / total) and the run starting now, on stderr; its status ends the line."""
    width = 20
    filled = width * done // total
    print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} done, running {label} ...", end="",
          file=sys.stderr, flush=True)


def run_rounds(runs: list[Run], cfg: RunConfig, plan: Plan, references: dict[str, Reference], on_run=None,
               done_before: int = 0, total: int | None = None, servers: ForkServers | None = None) -> list[RunResult]:
    """Every run `plan.rounds` times, interleaved (round 1 of all, then round 2 of all, ...) so
    that a noisy spell of the machine hits every implementation alike; one merged row per run.

    on_run(finished rows) is called after every run; on Ctrl-C the rows finished so far are
    attached to the KeyboardInterrupt as .finished. `servers`: single-process runs are forked from
    their module's fork server (common.launch.ForkServers), each framework imported once."""
    total = total or len(runs) * plan.rounds
    rounds: list[list[RunResult]] = [[] for _ in runs]
    done = done_before

    def finished() -> list[RunResult]:
        return [merge_rounds(r) for r in rounds if r]

    try:
        for round_index in range(plan.rounds):
            for i, (impl, variant, device, feed, workers, skip, precision) in enumerate(runs):
                if round_index and rounds[i][0].status == "skipped":
                    continue  # a skip is a fact about the machine, not noise: no point asking again
                run_cfg = dataclasses.replace(cfg, device=device, feed=feed or cfg.feed, workers=workers,
                                              precision=precision or cfg.precision)
                if skip:
                    rounds[i].append(skipped(run_cfg, impl.name, variant, skip))
                    done += 1
                    continue
                progress(done, total, f"{impl.name}/{run_label(variant, feed, workers)}/{device}/{run_cfg.numerics} "
                                      f"round {round_index + 1}/{plan.rounds}")
                # the sweep leaves it out: at its large sizes a second pass costs minutes, and shrinks to nothing
                result = apply_verdict(run_on_hosts(impl, variant, run_cfg, plan, servers),
                                       references[run_cfg.numerics])
                print(f" {result.status}", file=sys.stderr, flush=True)
                rounds[i].append(result)
                done += 1
                if on_run is not None:
                    on_run(finished())
    except KeyboardInterrupt as interrupt:
        interrupt.finished = finished()
        raise
    return finished()


def run_on_hosts(impl, variant: str, cfg: RunConfig, plan: Plan, servers: ForkServers | None = None):
    """One run; with --hosts 2 a data-parallel run's workers go to two fresh hosts, removed after it."""
    if plan.hosts == 1 or cfg.workers == 1:
        return run_one(impl, variant, cfg, plan.timeout_s, harness_cost=not plan.sweep, servers=servers)
    with hosts.TwoHosts(plan.link_gbit) as two:
        result = run_one(impl, variant, cfg, plan.timeout_s, hosts=two)
    where = f"over 2 hosts ({cfg.workers // 2} worker(s) each), link {hosts.link_name(plan.link_gbit)}"
    result.note = "; ".join(filter(None, [result.note, where]))
    return result


def profile_runs(runs: list[Run], results: list[RunResult], plan: Plan, servers: ForkServers | None = None) -> None:
    """--profile: one more run of each that ran, under its framework's profiler; its breakdown
    joins that run's row, its trace lies in out/traces/<run>/ (the profiled times go nowhere else)."""
    for i, (run, result) in enumerate(zip(runs, results)):
        if result.status in ("skipped", "failed"):
            continue
        slug = result.name.replace("/", "-").replace(" ", "")
        progress(i, len(runs), f"{result.name} under its profiler")
        run_cfg = dataclasses.replace(plan.cfg, device=run.device, feed=run.feed or plan.cfg.feed)
        profiled = run_one(run.impl, run.variant, run_cfg, plan.timeout_s, profile=plan.out / "traces" / slug,
                           servers=servers)
        if profiled.profile:
            result.profile = {**profiled.profile, "trace": f"traces/{slug}/trace.json"}
            print(" ok", file=sys.stderr, flush=True)
        else:
            note = f"not profiled: {profiled.error or 'no breakdown came back'}"
            result.note = "; ".join(filter(None, [result.note, note]))
            print(f" {profiled.status}", file=sys.stderr, flush=True)


def measure_machine(plan: Plan) -> dict:
    """The yardsticks every table line is read against, measured before any run: every kernel
    library's peak and its kernels at each size this invocation runs (common.yardstick)."""
    cfg = plan.cfg
    print(f"measuring the yardstick: the peak matmul rate and the step's kernels of "
          f"{', '.join(plan.libraries)}, each in a process of its own, and the timer's own cost ...",
          file=sys.stderr, flush=True)
    return {**yardstick_pass(plan), "command": plan.command, "device": "cpu",
            "kernels_of": {name: impl.kernels for name, impl in plan.registry.items()},
            "timer_overhead_s": timer_overhead_s(), "rounds": plan.rounds, "warmup_steps": cfg.warmup,
            "threads": cfg.threads, "thread_env": list(THREAD_ENV)}


def yardstick_pass(plan: Plan) -> dict:
    """One pass of common.yardstick over the libraries the compared frameworks call, at every size run."""
    cfg = plan.cfg
    sizes = ladder_configs(cfg, plan.sweep_steps) if plan.sweep else [cfg]
    return yardstick.measure(list(plan.libraries), [shape_of(c) for c in sizes], cfg.dtype, cfg.threads,
                             cfg.lr)


def second_pass(plan: Plan, measurement: dict) -> None:
    """The yardstick once more after the runs, each library's best of both passes kept (yardstick.combine)."""
    print("measuring the yardstick again, after the runs ...", file=sys.stderr, flush=True)
    measurement.update(yardstick.combine(measurement, yardstick_pass(plan)))


def rows_of(results: list[RunResult], measurement: dict) -> list:
    """The figures of every run, read against the measured peak, shape floors and own kernels."""
    return figures(results, measurement.get("peak_gflops"), measurement.get("shape_floors"),
                   yardstick.own_kernels(measurement), measurement.get("device", "cpu"))


def saver(plan: Plan, measurement: dict, earlier: list[RunResult] = ()):
    """After each run: results.json rewritten, so that an interrupted comparison keeps what finished."""
    def save(partial: list[RunResult]) -> None:
        if plan.out is not None:
            write_json_atomic(plan.out / "results.json", results_document(plan.cfg, [*earlier, *partial], measurement))

    return save


def fork_servers(runs: list[Run], plan: Plan) -> ForkServers | None:
    """The fork servers of every single-process run, each started and waited for in turn, so that each
    import is timed alone as a fresh process's would be (8 at once on 2 cores took as long, and read
    TensorFlow's import 1 s slow); None with --no-fork-server."""
    if not plan.fork_server:
        return None
    servers = ForkServers()
    for run in runs:
        wanted = None if run.skip else forked_module(
            run.impl, run.variant, dataclasses.replace(plan.cfg, device=run.device, workers=run.workers))
        if wanted is not None:
            servers.ready(*wanted, plan.timeout_s)
    return servers


def run_comparison(plan: Plan, measurement: dict) -> int:
    runs = runs_of(plan)
    references = references_for(plan.cfg, plan.precisions)
    measurement["noise_cost_s"] = sum(r.cost_s for r in references.values())
    servers = fork_servers(runs, plan)
    with servers or contextlib.nullcontext():
        save = saver(plan, measurement)
        try:
            results = run_rounds(runs, plan.cfg, plan, references, on_run=save, servers=servers)
        except KeyboardInterrupt as interrupt:
            finished = getattr(interrupt, "finished", [])
            save(finished)
            print(f"\n{stopped_by(interrupt)}: {len(finished)} run(s) finished" +
                  (f", kept in {plan.out / 'results.json'}" if plan.out else ""), file=sys.stderr)
            if finished:
                print(format_table(rows_of(finished, measurement)))
            return exit_status(interrupt)
        second_pass(plan, measurement)
        if plan.profile:
            profile_runs(runs, results, plan, servers)
    return report(plan, plan.cfg, results, measurement, references)


def run_sweep(plan: Plan, measurement: dict) -> int:
    """The same comparison at every ladder size; one plot, one crossover summary."""
    configs = ladder_configs(plan.cfg, plan.sweep_steps)
    runs = runs_of(plan)
    total = len(configs) * len(runs) * plan.rounds
    results: list[RunResult] = []
    references = None
    servers = fork_servers(runs, plan)
    with servers or contextlib.nullcontext():
        for point, point_cfg in enumerate(configs):
            point_references = references_for(point_cfg, plan.precisions)
            references = references or point_references
            results += run_rounds(runs, point_cfg, plan, point_references, servers=servers,
                                  on_run=saver(plan, measurement, list(results)),
                                  done_before=point * len(runs) * plan.rounds, total=total)
    second_pass(plan, measurement)
    return report(plan, configs[0], results, measurement, references,
                  intro=f"sweep: {len(configs)} sizes x {len(runs)} runs, {plan.sweep_steps} steps each, "
                        "lr scaled with the sizes")


def report_from(plan: Plan) -> int:
    """Re-read a results.json: the table, the verdict, and (with --out) the report files."""
    from common.result import SchemaError, load_results

    try:
        doc, results = load_results(plan.report_from)
    except SchemaError as exc:
        print(f"python compare.py: error: --report-from {exc}", file=sys.stderr)
        return 2
    cfg = RunConfig.from_dict(doc["config"])
    measurement = doc.get("measurement") or {}
    if plan.markdown:
        rows = rows_of(results, measurement)
        several_sizes = len({r.flops_per_step for r in rows}) > 1
        # a sweep's table, then what it concludes (the crossovers, what sets the time at the largest size)
        print(sweep_markdown(rows) + "\n\n" + "\n".join(f"- {line}" for line in summary(rows)) if several_sizes
              else markdown_table(rows))
        return 0 if verdict(results)[0] else 1
    lecture = plan.out is not None and any(r.config.get("batch") == cfg.batch for r in results)
    precisions = sorted({r.config.get("precision", "full") for r in results})
    return report(plan, cfg, results, measurement, references_for(cfg, precisions) if lecture else None, fresh=False)


def report(plan: Plan, cfg: RunConfig, results: list[RunResult], measurement: dict,
           references: dict[str, Reference] | None,
           intro: str | None = None, fresh: bool = True) -> int:
    """The one output tail: header, table, verdict and the lines under it, the report files; the exit status.

    `fresh`: these runs were made now; an earlier results.json re-read prints no header."""
    rows = rows_of(results, measurement)
    several_sizes = len({r.flops_per_step for r in rows}) > 1
    if fresh:
        print(f"\n{header(cfg, measurement)}" + (f"\n{intro}" if intro else "") + "\n")
    print(format_table(rows))
    if any(f.profile for f in rows):
        traces = f"{plan.out}/traces" if plan.out else "traces/ beside the results"
        print(f"\nwhere the time goes, per step (one extra profiled run each; traces in {traces}):\n"
              + profile_table(rows))
    matched, line = verdict(results)
    fastest = fastest_line(rows)
    lines = [line] + ([fastest] if fastest else []) + ([timer_line(rows, measurement)] if measurement else [])
    lines += yardstick_lines(measurement)
    lines += feed_lines(rows) + scaling_lines(rows) + (summary(rows) if several_sizes else [])
    gpu = gpu_line(rows, list(plan.devices) if fresh else sorted({r.device for r in rows}))
    lines += [gpu] if gpu else []
    print("\n" + "\n".join(lines))
    if plan.out is not None and measurement:
        write_reports(plan.out, cfg, results, rows, references, measurement, lines, sweep=several_sizes)
        if fresh:
            memory = any(f.peak_mb is not None for f in rows)
            plots = "loss_curves.png, step_time.png, " + (
                ("sweep.png, sweep_memory.png, " if memory else "sweep.png, ") if several_sizes else "")
            print(f"wrote results.json, results.csv, {plots}report.md to {plan.out}")
    return 0 if matched else 1




def stopped_by(interrupt: KeyboardInterrupt) -> str:
    return f"stopped by {interrupt}" if isinstance(interrupt, Stopped) else "interrupted"
