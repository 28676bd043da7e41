"""Run every implementation on the same problem, check each against NumPy, print the verdict and the speed table.

Each (implementation, variant, device) runs in its own subprocess so that frameworks never
share thread pools or allocators, with the same thread count for all. This file is the
arguments in and the exit status out: common.plan decides what runs, common.comparison runs it.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

from common import outdir
from common.comparison import measure_machine, reference_for, report_from, run_comparison, run_sweep, stopped_by
from common.config import CliParser, ConfigError, add_config_args
from common.launch import exit_status, stop_on_signals
from common.plan import Plan, plan_from_args
from common.yardstick import YardstickError
from implementations import ALIASES, REGISTRY

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
    m.add_argument("--no-fork-server", action="store_true",
                   help="start every run as a fresh `python -m` process that imports its framework itself, instead "
                        "of forking it from a process that imported the framework once (slower: the imports are "
                        "about half the default run; import s is then each run's own)")
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
        plan = plan_from_args(args, REGISTRY, ALIASES)
    except ConfigError as exc:
        parser.error(str(exc))
    typed = sys.argv[1:] if argv is None else argv
    return dataclasses.replace(plan, command=shlex.join(["python", "compare.py", *typed]),
                               libraries=tuple(kernel_libraries(plan.frameworks)))


def kernel_libraries(frameworks: tuple[str, ...]) -> list[str]:
    """The libraries whose kernels the compared frameworks call, the first rung's always, those installed."""
    from importlib.util import find_spec

    from implementations.kernels import REQUIRES

    first = [impl.kernels for impl in REGISTRY.values() if impl.first_rung]
    wanted = dict.fromkeys([*first, *(REGISTRY[f].kernels for f in frameworks)])
    return [lib for lib in wanted if all(find_spec(name) is not None for name in REQUIRES[lib])]


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    try:
        with outdir.held(plan.out):
            return dispatch(plan)
    except outdir.FolderHeld as exc:
        print(f"python compare.py: error: --out {exc}", file=sys.stderr)
        return 2
    except YardstickError as exc:  # before any run: nothing is lost
        print(f"python compare.py: error: {exc}", file=sys.stderr)
        return 2


def dispatch(plan: Plan) -> int:
    if plan.report_from is not None and plan.report_from.name == "deploy.json":
        from deploy.run import reprint

        return reprint(plan.report_from, plan.markdown)
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


_stopped_by = stopped_by  # tests/faulty_compare.py ends as this file's entry point does


if __name__ == "__main__":
    stop_on_signals()
    try:
        sys.exit(main())
    except KeyboardInterrupt as interrupt:  # the sweep and deploy paths: what finished is already on disk
        print(f"\n{stopped_by(interrupt)}", file=sys.stderr)
        sys.exit(exit_status(interrupt))
