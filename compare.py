"""Run every implementation on the same problem, check each against NumPy, print the verdict and the speed table.

Each (implementation, variant, device) runs in its own subprocess so that frameworks never
share thread pools or allocators, with the same thread count for all.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from common.config import DEVICES, FEEDS, CliParser, ConfigError, RunConfig, add_config_args, config_from_args
from common import hosts, noise, outdir
from common.figures import figures
from common.launch import THREAD_ENV, Stopped, exit_status, run_one, stop_on_signals
from common.noise import Reference
from common.problem import make_problem
from common.report import (fastest_line, feed_lines, format_table, gpu_line, header, markdown_table, profile_table,
                           results_document, scaling_lines, timer_line, verdict, write_json_atomic, write_reports,
                           yardstick_lines)
from common.result import RunResult, merge_rounds, run_label
from common import yardstick
from common.roofline import shape_of
from common.runner import apply_verdict, skipped
from common.sweep import ladder_configs, summary, sweep_markdown
from common.timing import timer_overhead_s
from implementations import ALIASES, REGISTRY, Implementation


@dataclass(frozen=True)
class Plan:
    """What this invocation does, decided once from the arguments; everything below reads it."""

    cfg: RunConfig  # the run's configuration (device and feed are set per run)
    frameworks: tuple[str, ...]
    variants: tuple[str, ...]
    devices: tuple[str, ...]
    feeds: tuple[str, ...]
    # --sweep and minibatch mode without --variants: one idiomatic variant per framework
    representatives: bool
    rounds: int
    timeout_s: float
    out: Path | None
    sweep: bool = False
    sweep_steps: int = 30
    deploy_from: tuple[Implementation, str] | None = None  # --deploy: the run whose weights are deployed
    report_from: Path | None = None
    markdown: bool = False
    profile: bool = False  # one extra run each under the framework's profiler, traces in out/traces
    hosts: int = 1  # --workers over 1 host (loopback) or 2 (network namespaces joined by a veth pair)
    link_gbit: float | None = None  # the 2 hosts' link, limited to this many Gbit/s (None: unlimited)
    command: str = "python compare.py"  # as typed: results.json and report.md name what made them


def parse_args(argv: list[str] | None) -> Plan:
    parser = CliParser(prog="python compare.py", description=__doc__.splitlines()[0])
    add_config_args(parser)
    g = parser.add_argument_group("selection and output")
    g.add_argument("--frameworks", default="all",
                   help=f"comma-separated, from {', '.join(REGISTRY)} (default all)")
    g.add_argument("--variants", default="all", help="comma-separated variant names (default all)")
    g.add_argument("--device", default="cpu", help="cpu, gpu or all (default cpu)")
    g.add_argument("--out", type=Path, metavar="DIR",
                   help="write results.json, results.csv, loss_curves.png, step_time.png (sweep.png), report.md")
    g.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run (default 900)")
    g.add_argument("--report-from", type=Path, metavar="RESULTS_JSON",
                   help="run nothing: print the table of an earlier results.json (and rewrite --out's reports), "
                        "or of a deploy.json written by --deploy")
    g.add_argument("--markdown", action="store_true",
                   help="with --report-from: print the table as Markdown instead (a sweep's as sizes x runs), "
                        "as the docs pages' tables are made")
    m = parser.add_argument_group("measurement")
    m.add_argument("--rounds", type=int, default=None,
                   help="times each run is repeated, interleaved across implementations (default 3; 1 with --sweep)")
    m.add_argument("--profile", action="store_true",
                   help="after the timed rounds, one extra run of each under its framework's own profiler: "
                        "--out/traces/<run>/trace.json (ui.perfetto.dev opens them) and a per-step breakdown "
                        "table (kernels, time inside them, the rest); never part of the timed statistics")
    m.add_argument("--sweep", action="store_true",
                   help="the same comparison over a ladder of sizes, lecture's to compute-bound (see docs/measurement.md)")
    m.add_argument("--sweep-steps", type=int, default=30, help="steps per run in the sweep (default 30)")
    h = parser.add_argument_group("data-parallel across hosts (Linux, root; see docs/data-parallel.md)")
    h.add_argument("--hosts", type=int, default=1,
                   help="1: --workers on loopback (default); 2: half the workers on each of two hosts, network "
                        "namespaces joined by a veth pair, started by docs/data-parallel.md's multi-machine commands")
    h.add_argument("--link-gbit", type=float, default=None, metavar="B",
                   help="with --hosts 2: limit the link between the hosts to B Gbit/s (tc tbf; default unlimited)")
    d = parser.add_argument_group("deploy (instead of the training comparison)")
    d.add_argument("--deploy", action="store_true",
                   help="train once, export to ONNX (predict_net, torch.onnx.export, Keras export), "
                        "and print the inference table: ONNX Runtime (Python, Node) against each source")
    d.add_argument("--deploy-from", default="onnx/step", metavar="FRAMEWORK/VARIANT",
                   help="the implementation whose trained weights are deployed (default onnx/step)")
    args = parser.parse_args(argv)
    try:
        plan = _plan(args)
    except ConfigError as exc:
        parser.error(str(exc))
    typed = sys.argv[1:] if argv is None else argv
    return dataclasses.replace(plan, command=shlex.join(["python", "compare.py", *typed]))


def _plan(args) -> Plan:
    feeds = _pick(args.feed, list(FEEDS), "--feed")
    if not args.samples and feeds != ["resident"]:
        raise ConfigError("--feed needs --samples: the lecture's one batch is always resident")
    if args.workers > 1 and (args.sweep or args.deploy or args.variants != "all"):
        flag = "--sweep" if args.sweep else ("--deploy" if args.deploy else "--variants")
        raise ConfigError(f"--workers cannot be combined with {flag}: each framework's data-parallel "
                          "engine is one variant on the lecture's batch")
    if args.samples and (args.sweep or args.deploy):
        raise ConfigError(f"--samples cannot be combined with {'--sweep' if args.sweep else '--deploy'}, "
                          "which train on the lecture's one batch")
    cfg = config_from_args(args, device="cpu", feed=feeds[0])
    frameworks = _pick(args.frameworks, list(REGISTRY), "--frameworks", ALIASES)
    all_variants = [v for f in frameworks for v in REGISTRY[f].variants]
    rounds = (1 if args.sweep else 3) if args.rounds is None else args.rounds
    if rounds < 1:
        raise ConfigError(f"--rounds must be an integer >= 1, got {rounds}")
    if args.sweep_steps < 2:
        raise ConfigError(f"--sweep-steps must be an integer >= 2, got {args.sweep_steps}")
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {args.timeout!r}")
    if args.profile and (args.sweep or args.deploy or args.workers > 1 or args.report_from):
        flag = ("--sweep" if args.sweep else "--deploy" if args.deploy else "--workers" if args.workers > 1
                else "--report-from")
        raise ConfigError(f"--profile cannot be combined with {flag}: it profiles one size's single-process runs "
                          "(set the size with --batch/--d-in/--hidden/--d-out)")
    if args.profile and args.out is None:
        raise ConfigError("--profile needs --out DIR: the traces are written to DIR/traces")
    _check_hosts(args)
    if args.markdown and args.report_from is None:
        raise ConfigError("--markdown goes with --report-from: it prints an earlier results.json's table")
    if args.out is not None:
        _check_writable(args.out)
    return Plan(cfg=cfg, frameworks=tuple(frameworks),
                variants=tuple(_pick(args.variants, list(dict.fromkeys(all_variants)), "--variants")),
                devices=tuple(_pick(args.device, list(DEVICES), "--device")), feeds=tuple(feeds),
                representatives=(args.sweep or bool(args.samples)) and args.variants == "all",
                rounds=rounds, timeout_s=args.timeout, out=args.out, sweep=args.sweep, sweep_steps=args.sweep_steps,
                deploy_from=_deploy_source(args.deploy_from) if args.deploy else None, report_from=args.report_from,
                markdown=args.markdown, profile=args.profile, hosts=args.hosts, link_gbit=args.link_gbit)


def _check_hosts(args) -> None:
    """--hosts and --link-gbit: what they combine with, and whether this machine can make hosts."""
    if args.hosts not in (1, 2):
        raise ConfigError(f"--hosts must be 1 (loopback) or 2 (two network namespaces), got {args.hosts}")
    if args.link_gbit is not None and args.hosts != 2:
        raise ConfigError("--link-gbit limits the link between two hosts: it needs --hosts 2")
    if args.link_gbit is not None and not args.link_gbit > 0:
        raise ConfigError(f"--link-gbit must be > 0 Gbit/s, got {args.link_gbit!r}")
    if args.hosts == 2:
        if args.workers < 2 or args.workers % 2:
            raise ConfigError(f"--hosts 2 needs --workers W, even and >= 2 (W/2 per host), got {args.workers}")
        reason = hosts.unavailable_reason()
        if reason:
            raise ConfigError(f"--hosts 2: {reason}")


def _pick(text: str, allowed: list[str], flag: str, aliases: dict[str, list[str]] | None = None) -> list[str]:
    if text == "all":
        return allowed
    aliases = aliases or {}
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed and n not in aliases]
    if unknown or not names:
        choices = ", ".join([*allowed, *aliases])
        raise ConfigError(f"{flag}: unknown {', '.join(unknown) or 'empty list'}; allowed: {choices} or all")
    expanded = [m for n in names for m in aliases.get(n, [n])]
    return list(dict.fromkeys(expanded))


def _deploy_source(text: str) -> tuple[Implementation, str]:
    framework, _, variant = text.partition("/")
    if framework not in REGISTRY or variant not in REGISTRY[framework].variants:
        choices = ", ".join(f"{f}/{v}" for f, impl in REGISTRY.items() for v in impl.variants)
        raise ConfigError(f"--deploy-from: unknown {text!r}; allowed: {choices}")
    return REGISTRY[framework], variant


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


class Run(NamedTuple):
    """One row of the comparison: what runs, where, fed how, on how many workers."""

    impl: Implementation
    variant: str
    device: str
    feed: str | None = None  # None: the lecture's batch
    workers: int = 1
    skip: str | None = None  # a row that cannot run, with the reason


def runs_of(plan: Plan) -> list[Run]:
    """Every run, in table order."""
    if plan.cfg.workers > 1:
        return data_parallel_runs(plan)

    def wanted(impl: Implementation, variant: str) -> bool:
        if not plan.representatives:
            return variant in plan.variants
        # one per framework keeps the sweep, and the grid of feeds, to minutes
        return variant == (impl.minibatch[:1] or (None,))[0] if plan.cfg.minibatch else variant == impl.sweep

    feeds = plan.feeds if plan.cfg.minibatch else (None,)
    return [Run(REGISTRY[f], v, d, feed) for d in plan.devices for f in plan.frameworks
            for v in REGISTRY[f].variants if wanted(REGISTRY[f], v) for feed in feeds]


def data_parallel_runs(plan: Plan) -> list[Run]:
    """--workers W: each engine on 1 worker and on W (the scaling baseline is the same code);
    NumPy's row as the single-process yardstick; frameworks without an engine, a skipped row."""
    runs = []
    for device in plan.devices:
        for framework in plan.frameworks:
            impl = REGISTRY[framework]
            if impl.distributed is not None and plan.hosts > 1 and impl.distributed.single_host:
                runs.append(Run(impl, impl.distributed.variant, device,
                                skip=f"--hosts {plan.hosts}: {impl.distributed.single_host}"))
            elif impl.distributed is not None and plan.cfg.minibatch and not impl.distributed.minibatch:
                runs.append(Run(impl, impl.distributed.variant, device, skip=(
                    f"--workers with --samples is built for {_engines(lambda engine: engine.minibatch)}; "
                    f"{framework}'s {impl.distributed.variant} engine trains on the lecture's batch")))
            elif impl.distributed is not None:
                runs += [Run(impl, impl.distributed.variant, device, workers=w) for w in (1, plan.cfg.workers)]
            elif impl.first_rung:
                runs.append(Run(impl, impl.variants[0], device))
            else:
                runs.append(Run(impl, impl.variants[0], device, skip=(
                    f"no data-parallel engine wired for {framework}; --workers runs {_engines()}")))
    return runs


def _engines(which=lambda engine: True) -> str:
    """The registry's data-parallel engines that `which` accepts, as 'torch (ddp), ...'."""
    return ", ".join(f"{name} ({impl.distributed.variant})" for name, impl in REGISTRY.items()
                     if impl.distributed is not None and which(impl.distributed))


def reference_for(cfg: RunConfig) -> Reference:
    """The reference run of `cfg` and the rounding noise every run is judged within."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=cfg.threads):
        return noise.measure(cfg, make_problem(cfg))


def progress(done: int, total: int, label: str) -> None:
    """The bar (runs done / total) and the run starting now, on stderr; its status ends the line."""
    width = 20
    filled = width * done // total
    print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} done, running {label} ...", end="",
          file=sys.stderr, flush=True)


def run_rounds(runs: list[Run], cfg: RunConfig, plan: Plan, reference: Reference, on_run=None,
               done_before: int = 0, total: int | None = None) -> list[RunResult]:
    """Every run `plan.rounds` times, interleaved (round 1 of all, then round 2 of all, ...) so
    that a noisy spell of the machine hits every implementation alike; one merged row per run.

    on_run(finished rows) is called after every run; on Ctrl-C the rows finished so far are
    attached to the KeyboardInterrupt as .finished."""
    total = total or len(runs) * plan.rounds
    rounds: list[list[RunResult]] = [[] for _ in runs]
    done = done_before

    def finished() -> list[RunResult]:
        return [merge_rounds(r) for r in rounds if r]

    try:
        for round_index in range(plan.rounds):
            for i, (impl, variant, device, feed, workers, skip) in enumerate(runs):
                if round_index and rounds[i][0].status == "skipped":
                    continue  # a skip is a fact about the machine, not noise: no point asking again
                run_cfg = dataclasses.replace(cfg, device=device, feed=feed or cfg.feed, workers=workers)
                if skip:
                    rounds[i].append(skipped(run_cfg, impl.name, variant, skip))
                    done += 1
                    continue
                progress(done, total, f"{impl.name}/{run_label(variant, feed, workers)}/{device}/{cfg.dtype} "
                                      f"round {round_index + 1}/{plan.rounds}")
                # the sweep leaves it out: at its large sizes a second pass costs minutes, and shrinks to nothing
                result = apply_verdict(run_on_hosts(impl, variant, run_cfg, plan), reference)
                print(f" {result.status}", file=sys.stderr, flush=True)
                rounds[i].append(result)
                done += 1
                if on_run is not None:
                    on_run(finished())
    except KeyboardInterrupt as interrupt:
        interrupt.finished = finished()
        raise
    return finished()


def run_on_hosts(impl: Implementation, variant: str, cfg: RunConfig, plan: Plan):
    """One run; with --hosts 2 a data-parallel run's workers go to two fresh hosts, removed after it."""
    if plan.hosts == 1 or cfg.workers == 1:
        return run_one(impl, variant, cfg, plan.timeout_s, harness_cost=not plan.sweep)
    with hosts.TwoHosts(plan.link_gbit) as two:
        result = run_one(impl, variant, cfg, plan.timeout_s, hosts=two)
    where = f"over 2 hosts ({cfg.workers // 2} worker(s) each), link {hosts.link_name(plan.link_gbit)}"
    result.note = "; ".join(filter(None, [result.note, where]))
    return result


def profile_runs(runs: list[Run], results: list[RunResult], plan: Plan) -> None:
    """--profile: one more run of each that ran, under its framework's profiler; its breakdown
    joins that run's row, its trace lies in out/traces/<run>/ (the profiled times go nowhere else)."""
    for i, (run, result) in enumerate(zip(runs, results)):
        if result.status in ("skipped", "failed"):
            continue
        slug = result.name.replace("/", "-").replace(" ", "")
        progress(i, len(runs), f"{result.name} under its profiler")
        run_cfg = dataclasses.replace(plan.cfg, device=run.device, feed=run.feed or plan.cfg.feed)
        profiled = run_one(run.impl, run.variant, run_cfg, plan.timeout_s, profile=plan.out / "traces" / slug)
        if profiled.profile:
            result.profile = {**profiled.profile, "trace": f"traces/{slug}/trace.json"}
            print(" ok", file=sys.stderr, flush=True)
        else:
            note = f"not profiled: {profiled.error or 'no breakdown came back'}"
            result.note = "; ".join(filter(None, [result.note, note]))
            print(f" {profiled.status}", file=sys.stderr, flush=True)


def kernel_libraries(frameworks: tuple[str, ...]) -> list[str]:
    """The libraries whose kernels the compared frameworks call, the first rung's always, those installed."""
    from importlib.util import find_spec

    from implementations.kernels import REQUIRES

    first = [impl.kernels for impl in REGISTRY.values() if impl.first_rung]
    wanted = dict.fromkeys([*first, *(REGISTRY[f].kernels for f in frameworks)])
    return [lib for lib in wanted if all(find_spec(name) is not None for name in REQUIRES[lib])]


def measure_machine(plan: Plan) -> dict:
    """The yardsticks every table line is read against, measured before any run: every kernel
    library's peak and its kernels at each size this invocation runs (common.yardstick)."""
    cfg = plan.cfg
    print(f"measuring the yardstick: the peak matmul rate and the step's kernels of "
          f"{', '.join(kernel_libraries(plan.frameworks))}, each in a process of its own, and the timer's own cost ...",
          file=sys.stderr, flush=True)
    return {**yardstick_pass(plan), "command": plan.command, "device": "cpu",
            "kernels_of": {name: impl.kernels for name, impl in REGISTRY.items()},
            "timer_overhead_s": timer_overhead_s(), "rounds": plan.rounds, "warmup_steps": cfg.warmup,
            "threads": cfg.threads, "thread_env": list(THREAD_ENV)}


def yardstick_pass(plan: Plan) -> dict:
    """One pass of common.yardstick over the libraries the compared frameworks call, at every size run."""
    cfg = plan.cfg
    sizes = ladder_configs(cfg, plan.sweep_steps) if plan.sweep else [cfg]
    return yardstick.measure(kernel_libraries(plan.frameworks), [shape_of(c) for c in sizes], cfg.dtype, cfg.threads,
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


def run_comparison(plan: Plan, measurement: dict) -> int:
    runs = runs_of(plan)
    reference = reference_for(plan.cfg)
    measurement["noise_cost_s"] = reference.cost_s
    save = saver(plan, measurement)
    try:
        results = run_rounds(runs, plan.cfg, plan, reference, on_run=save)
    except KeyboardInterrupt as interrupt:
        finished = getattr(interrupt, "finished", [])
        save(finished)
        print(f"\n{_stopped_by(interrupt)}: {len(finished)} run(s) finished" + (f", kept in {plan.out / 'results.json'}"
                                                                    if plan.out else ""), file=sys.stderr)
        if finished:
            print(format_table(rows_of(finished, measurement)))
        return exit_status(interrupt)
    second_pass(plan, measurement)
    if plan.profile:
        profile_runs(runs, results, plan)
    return report(plan, plan.cfg, results, measurement, reference)


def run_sweep(plan: Plan, measurement: dict) -> int:
    """The same comparison at every ladder size; one plot, one crossover summary."""
    configs = ladder_configs(plan.cfg, plan.sweep_steps)
    runs = runs_of(plan)
    total = len(configs) * len(runs) * plan.rounds
    results: list[RunResult] = []
    reference = None
    for point, point_cfg in enumerate(configs):
        point_reference = reference_for(point_cfg)
        reference = reference or point_reference
        results += run_rounds(runs, point_cfg, plan, point_reference, on_run=saver(plan, measurement, list(results)),
                              done_before=point * len(runs) * plan.rounds, total=total)
    second_pass(plan, measurement)
    return report(plan, configs[0], results, measurement, reference,
                  intro=f"sweep: {len(configs)} sizes x {len(runs)} runs, {plan.sweep_steps} steps each, "
                        "lr scaled with the sizes")


def report_from(plan: Plan) -> int:
    """Re-read a results.json: the table, the verdict, and (with --out) the report files."""
    from common.result import SchemaError, load_results

    if plan.report_from.name == "deploy.json":
        from deploy.run import reprint

        return reprint(plan.report_from, plan.markdown)
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
    return report(plan, cfg, results, measurement, reference_for(cfg) if lecture else None, fresh=False)


def report(plan: Plan, cfg: RunConfig, results: list[RunResult], measurement: dict, reference: Reference | None,
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
        write_reports(plan.out, cfg, results, rows, reference, measurement, lines, sweep=several_sizes)
        if fresh:
            memory = any(f.peak_mb is not None for f in rows)
            plots = "loss_curves.png, step_time.png, " + (
                ("sweep.png, sweep_memory.png, " if memory else "sweep.png, ") if several_sizes else "")
            print(f"wrote results.json, results.csv, {plots}report.md to {plan.out}")
    return 0 if matched else 1


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    try:
        with outdir.held(plan.out):
            return dispatch(plan)
    except outdir.FolderHeld as exc:
        print(f"python compare.py: error: --out {exc}", file=sys.stderr)
        return 2


def dispatch(plan: Plan) -> int:
    if plan.report_from is not None:
        return report_from(plan)
    replacing = outdir.replaced(plan.out)
    if replacing:
        print(replacing, file=sys.stderr)
    if plan.deploy_from is not None:
        from deploy.run import run_deploy

        return run_deploy(plan.cfg, plan.deploy_from, plan.out, plan.timeout_s, reference_for(plan.cfg)).exit_status
    measurement = measure_machine(plan)
    return run_sweep(plan, measurement) if plan.sweep else run_comparison(plan, measurement)


def _stopped_by(interrupt: KeyboardInterrupt) -> str:
    return f"stopped by {interrupt}" if isinstance(interrupt, Stopped) else "interrupted"


if __name__ == "__main__":
    stop_on_signals()
    try:
        sys.exit(main())
    except KeyboardInterrupt as interrupt:  # the sweep and deploy paths: what finished is already on disk
        print(f"\n{_stopped_by(interrupt)}", file=sys.stderr)
        sys.exit(exit_status(interrupt))
