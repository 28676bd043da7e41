"""Run every implementation on the same problem, check each against NumPy, print the verdict and the speed table.

Each (implementation, variant, device) runs in its own subprocess so that frameworks never
share thread pools or allocators, with the same thread count for all.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from common.config import DEVICES, FEEDS, CliParser, ConfigError, RunConfig, add_config_args, config_from_args
from common.problem import make_problem
from common.report import (feed_lines, figures, format_table, gpu_line, header, results_document, scaling_lines,
                           timer_line, verdict, write_json_atomic, write_reports)
from common.result import RunResult, merge_rounds, run_label
from common.roofline import measure_peak_gflops
from common.sweep import ladder_configs, summary
from common.timing import timer_overhead_s
from common.launch import THREAD_ENV, run_one
from common.runner import apply_verdict, skipped
from implementations import ALIASES, REGISTRY, Implementation
# --sweep without --variants: each framework's idiomatic training loop, one row each.
SWEEP_VARIANTS = {"numpy": "manual", "torch": "autograd", "tensorflow": "variables", "onnx": "step",
                  "keras-tensorflow": "fit", "keras-jax": "fit"}


def parse_args(argv: list[str] | None):
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
                   help="run nothing: print the table of an earlier results.json (and rewrite --out's reports)")
    m = parser.add_argument_group("measurement")
    m.add_argument("--rounds", type=int, default=None,
                   help="times each run is repeated, interleaved across implementations (default 3; 1 with --sweep)")
    m.add_argument("--sweep", action="store_true",
                   help="the same comparison over a ladder of sizes, lecture's to compute-bound (see README)")
    m.add_argument("--sweep-steps", type=int, default=30, help="steps per run in the sweep (default 30)")
    d = parser.add_argument_group("deploy (instead of the training comparison)")
    d.add_argument("--deploy", action="store_true",
                   help="train once, export to ONNX (predict_net, torch.onnx.export, Keras export), "
                        "and print the inference table: ONNX Runtime (Python, Node) against each source")
    d.add_argument("--deploy-from", default="onnx/step", metavar="FRAMEWORK/VARIANT",
                   help="the implementation whose trained weights are deployed (default onnx/step)")
    args = parser.parse_args(argv)
    try:
        args.feeds = _pick(args.feed, list(FEEDS), "--feed")
        if not args.samples and args.feeds != ["resident"]:
            raise ConfigError("--feed needs --samples: the lecture's one batch is always resident")
        if args.workers > 1 and (args.sweep or args.deploy or args.variants != "all"):
            flag = "--sweep" if args.sweep else ("--deploy" if args.deploy else "--variants")
            raise ConfigError(f"--workers cannot be combined with {flag}: each framework's data-parallel "
                              "engine is one variant on the lecture's batch")
        if args.samples and (args.sweep or args.deploy):
            raise ConfigError(f"--samples cannot be combined with {'--sweep' if args.sweep else '--deploy'}, "
                              "which train on the lecture's one batch")
        cfg = config_from_args(args, device="cpu", feed=args.feeds[0])
        args.frameworks = _pick(args.frameworks, list(REGISTRY), "--frameworks", ALIASES)
        all_variants = [v for f in args.frameworks for v in REGISTRY[f].variants]
        # --sweep and minibatch mode, without --variants: one idiomatic variant per framework
        args.representatives = (args.sweep or bool(args.samples)) and args.variants == "all"
        args.variants = _pick(args.variants, list(dict.fromkeys(all_variants)), "--variants")
        args.devices = _pick(args.device, list(DEVICES), "--device")
        args.deploy_from = _deploy_source(args.deploy_from)
        if args.rounds is None:
            args.rounds = 1 if args.sweep else 3
        if args.rounds < 1:
            raise ConfigError(f"--rounds must be an integer >= 1, got {args.rounds}")
        if args.sweep_steps < 2:
            raise ConfigError(f"--sweep-steps must be an integer >= 2, got {args.sweep_steps}")
        if args.timeout <= 0:
            raise ConfigError(f"--timeout must be > 0 seconds, got {args.timeout!r}")
        if args.out is not None:
            _check_writable(args.out)
    except ConfigError as exc:
        parser.error(str(exc))
    return args, cfg


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


def plan(args, cfg: RunConfig) -> list[Run]:
    """Every run, in table order."""
    if cfg.workers > 1:
        return data_parallel_plan(args, cfg)

    def wanted(framework: str, variant: str) -> bool:
        if not args.representatives:
            return variant in args.variants
        # one per framework keeps the sweep, and the grid of feeds, to minutes
        if args.samples:
            return REGISTRY[framework].minibatch[:1] == (variant,)
        return SWEEP_VARIANTS.get(framework) == variant

    feeds = args.feeds if args.samples else [None]
    return [Run(REGISTRY[f], v, d, feed) for d in args.devices for f in args.frameworks
            for v in REGISTRY[f].variants if wanted(f, v) for feed in feeds]


def data_parallel_plan(args, cfg: RunConfig) -> list[Run]:
    """--workers W: each engine on 1 worker and on W (the scaling baseline is the same code);
    NumPy's row as the single-process yardstick; frameworks without an engine, a skipped row."""
    runs = []
    for device in args.devices:
        for framework in args.frameworks:
            impl = REGISTRY[framework]
            if impl.distributed is not None:
                runs += [Run(impl, impl.distributed.variant, device, workers=w) for w in (1, cfg.workers)]
            elif framework == "numpy":
                runs.append(Run(impl, impl.variants[0], device))
            else:
                runs.append(Run(impl, impl.variants[0], device, skip=(
                    f"no data-parallel engine wired for {framework}; --workers runs torch (DDP) and tensorflow "
                    "(MultiWorkerMirroredStrategy)")))
    return runs


def reference_for(cfg: RunConfig) -> list[float]:
    from threadpoolctl import threadpool_limits

    from common.reference import reference_losses

    with threadpool_limits(limits=cfg.threads):
        return reference_losses(cfg, make_problem(cfg))


def progress(done: int, total: int, label: str) -> None:
    """The bar (runs done / total) and the run starting now, on stderr; its status ends the line."""
    width = 20
    filled = width * done // total
    print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} done, running {label} ...", end="",
          file=sys.stderr, flush=True)


def run_rounds(runs, cfg: RunConfig, args, reference: list[float], on_run=None, done_before: int = 0,
               total: int | None = None) -> list[RunResult]:
    """Every run `args.rounds` times, interleaved (round 1 of all, then round 2 of all, ...) so
    that a noisy spell of the machine hits every implementation alike; one merged row per run.

    on_run(finished rows) is called after every run; on Ctrl-C the rows finished so far are
    attached to the KeyboardInterrupt as .finished."""
    total = total or len(runs) * args.rounds
    rounds: list[list[RunResult]] = [[] for _ in runs]
    done = done_before

    def finished() -> list[RunResult]:
        return [merge_rounds(r) for r in rounds if r]

    try:
        for round_index in range(args.rounds):
            for i, (impl, variant, device, feed, workers, skip) in enumerate(runs):
                if round_index and rounds[i][0].status == "skipped":
                    continue  # a skip is a fact about the machine, not noise: no point asking again
                run_cfg = dataclasses.replace(cfg, device=device, feed=feed or cfg.feed, workers=workers)
                if skip:
                    rounds[i].append(skipped(run_cfg, impl.framework, variant, skip))
                    done += 1
                    continue
                progress(done, total, f"{impl.framework}/{run_label(variant, feed, workers)}/{device}/{cfg.dtype} "
                                      f"round {round_index + 1}/{args.rounds}")
                result = apply_verdict(run_one(impl, variant, run_cfg, args.timeout), reference)
                print(f" {result.status}", file=sys.stderr, flush=True)
                rounds[i].append(result)
                done += 1
                if on_run is not None:
                    on_run(finished())
    except KeyboardInterrupt as interrupt:
        interrupt.finished = finished()
        raise
    return finished()


def measure_machine(cfg: RunConfig, args) -> dict:
    """The yardsticks every table line is read against, measured before any run."""
    print("measuring the machine's peak matmul rate and the timer's own cost ...", file=sys.stderr, flush=True)
    return {"peak_gflops": measure_peak_gflops(cfg.dtype, cfg.threads), "peak_dtype": cfg.dtype,
            "timer_overhead_s": timer_overhead_s(), "rounds": args.rounds, "warmup_steps": cfg.warmup,
            "threads": cfg.threads, "thread_env": list(THREAD_ENV)}


def run_sweep(args, cfg: RunConfig, measurement: dict) -> int:
    """The same comparison at every ladder size; one plot, one crossover summary."""
    configs = ladder_configs(cfg, args.sweep_steps)
    runs = plan(args, cfg)
    total = len(configs) * len(runs) * args.rounds
    results: list[RunResult] = []
    reference = None
    for point, point_cfg in enumerate(configs):
        point_reference = reference_for(point_cfg)
        reference = reference or point_reference
        done = list(results)

        def save(partial: list[RunResult]) -> None:
            if args.out is not None:
                write_json_atomic(args.out / "results.json", results_document(cfg, done + partial, measurement))

        results += run_rounds(runs, point_cfg, args, point_reference, on_run=save,
                              done_before=point * len(runs) * args.rounds, total=total)
    points = figures(results, measurement["peak_gflops"])
    print(f"\n{header(configs[0], measurement)}\nsweep: {len(configs)} sizes x {len(runs)} runs, "
          f"{args.sweep_steps} steps each, lr scaled with the sizes\n")
    print(format_table(points))
    lines = [verdict(results)[1], timer_line(points, measurement)] + summary(points)
    gpu = gpu_line(points, args.devices)
    lines += [gpu] if gpu else []
    print("\n" + "\n".join(lines))
    if args.out is not None:
        write_reports(args.out, configs[0], results, points, reference, measurement, lines, sweep_points=points)
        print(f"wrote results.json, results.csv, loss_curves.png, step_time.png, sweep.png, report.md to {args.out}")
    return 0 if verdict(results)[0] else 1


def report_from(args) -> int:
    """Re-read a results.json: the table, the verdict, and (with --out) the report files."""
    from common.result import SchemaError, load_results

    try:
        doc, results = load_results(args.report_from)
    except SchemaError as exc:
        print(f"python compare.py: error: --report-from {exc}", file=sys.stderr)
        return 2
    cfg = RunConfig.from_dict(doc["config"])
    measurement = doc.get("measurement") or {}
    rows = figures(results, measurement.get("peak_gflops"))
    print(format_table(rows))
    matched, line = verdict(results)
    print(f"\n{line}")
    if args.out is not None and measurement:
        lecture = [r for r in results if r.config.get("batch") == cfg.batch]
        reference = reference_for(cfg) if lecture else []
        write_reports(args.out, cfg, results, rows, reference, measurement, [line])
    return 0 if matched else 1


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv)
    if args.report_from is not None:
        return report_from(args)
    if args.deploy:
        from deploy.run import run_deploy

        return run_deploy(args, cfg, reference_for(cfg))
    measurement = measure_machine(cfg, args)
    if args.sweep:
        return run_sweep(args, cfg, measurement)
    runs = plan(args, cfg)
    reference = reference_for(cfg)

    def save(partial: list[RunResult]) -> None:  # after each run: an interrupted comparison keeps what finished
        if args.out is not None:
            write_json_atomic(args.out / "results.json", results_document(cfg, partial, measurement))

    try:
        results = run_rounds(runs, cfg, args, reference, on_run=save)
    except KeyboardInterrupt as interrupt:
        finished = getattr(interrupt, "finished", [])
        save(finished)
        print(f"\ninterrupted: {len(finished)} run(s) finished" + (f", kept in {args.out / 'results.json'}"
                                                                    if args.out else ""), file=sys.stderr)
        if finished:
            print(format_table(figures(finished, measurement["peak_gflops"])))
        return 130
    rows = figures(results, measurement["peak_gflops"])
    print(f"\n{header(cfg, measurement)}\n")
    print(format_table(rows))
    matched, line = verdict(results)
    lines = [line, timer_line(rows, measurement)]
    lines += feed_lines(rows) + scaling_lines(rows)
    gpu = gpu_line(rows, args.devices)
    lines += [gpu] if gpu else []
    print("\n" + "\n".join(lines))
    if args.out is not None:
        write_reports(args.out, cfg, results, rows, reference, measurement, lines)
        print(f"wrote results.json, results.csv, loss_curves.png, step_time.png, report.md to {args.out}")
    return 0 if matched else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the sweep and deploy paths: what finished is already on disk
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
