"""Run every implementation on the same problem, check each against NumPy, print the verdict and the speed table.

Each (implementation, variant, device) runs in its own subprocess so that frameworks never
share thread pools or allocators, with the same thread count for all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from common.config import DEVICES, CliParser, ConfigError, RunConfig, add_config_args, config_from_args
from common.problem import make_problem
from common.report import format_table, results_document, verdict, write_json_atomic
from common.result import RunResult
from common.runner import apply_verdict, skipped
from implementations import ALIASES, REGISTRY, Implementation, missing_packages

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def parse_args(argv: list[str] | None):
    parser = CliParser(prog="python compare.py", description=__doc__.splitlines()[0])
    add_config_args(parser)
    g = parser.add_argument_group("selection and output")
    g.add_argument("--frameworks", default="all",
                   help=f"comma-separated, from {', '.join(REGISTRY)} (default all)")
    g.add_argument("--variants", default="all", help="comma-separated variant names (default all)")
    g.add_argument("--device", default="cpu", help="cpu, gpu or all (default cpu)")
    g.add_argument("--out", type=Path, metavar="DIR", help="write DIR/results.json")
    g.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run (default 900)")
    d = parser.add_argument_group("deploy (instead of the training comparison)")
    d.add_argument("--deploy", action="store_true",
                   help="train once, export to ONNX (predict_net, torch.onnx.export, Keras export), "
                        "and print the inference table: ONNX Runtime (Python, Node) against each source")
    d.add_argument("--deploy-from", default="onnx/step", metavar="FRAMEWORK/VARIANT",
                   help="the implementation whose trained weights are deployed (default onnx/step)")
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args, device="cpu")
        args.frameworks = _pick(args.frameworks, list(REGISTRY), "--frameworks", ALIASES)
        all_variants = [v for f in args.frameworks for v in REGISTRY[f].variants]
        args.variants = _pick(args.variants, list(dict.fromkeys(all_variants)), "--variants")
        args.devices = _pick(args.device, list(DEVICES), "--device")
        args.deploy_from = _deploy_source(args.deploy_from)
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


def plan(args) -> list[tuple[Implementation, str, str]]:
    return [(REGISTRY[f], v, d) for d in args.devices for f in args.frameworks
            for v in REGISTRY[f].variants if v in args.variants]


def config_flags(cfg: RunConfig) -> list[str]:
    """The CLI flags that reproduce `cfg` in a child process (repr keeps floats exact)."""
    flags = []
    for name, value in cfg.to_dict().items():
        flags += [f"--{name.replace('_', '-')}", repr(value) if isinstance(value, float) else str(value)]
    return flags


def run_one(impl: Implementation, variant: str, cfg: RunConfig, timeout_s: float,
            extra_args: tuple[str, ...] = ()) -> RunResult:
    """One run in a fresh subprocess; any way it can fail becomes a row with the reason."""
    missing = missing_packages(impl)
    if missing:
        return skipped(cfg, impl.framework, variant,
                       f"{', '.join(missing)} not installed: pip install -e '.[{impl.extra}]'")
    env = child_env(cfg, dict(impl.env))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", impl.module, "--variant", variant, *config_flags(cfg), "--json", str(out),
               *extra_args]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return _failed(cfg, impl, variant, f"timed out after {timeout_s:g} s")
        if out.exists():
            return RunResult.from_json(out.read_text())
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        return _failed(cfg, impl, variant, f"{how}: {last}")


def child_env(cfg: RunConfig, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every child: equal thread counts, set before any library loads."""
    return {**os.environ, **{name: str(cfg.threads) for name in THREAD_ENV}, **extra}


def _failed(cfg: RunConfig, impl: Implementation, variant: str, reason: str) -> RunResult:
    result = skipped(cfg, impl.framework, variant, reason)
    result.status = "failed"
    return result


def reference_for(cfg: RunConfig) -> list[float]:
    from threadpoolctl import threadpool_limits

    from common.reference import reference_losses

    with threadpool_limits(limits=cfg.threads):
        return reference_losses(cfg, make_problem(cfg))


def run_deploy(args, cfg: RunConfig, reference: list[float]) -> int:
    """Train once with --deploy-from, export three ways, time each model in each runtime."""
    from common.problem import make_serving_batch
    from common.report import format_deploy_table
    from common.timing import step_stats
    from deploy import node
    from deploy.bench import DEPLOY_TOLERANCE, max_rel_diff
    from deploy.export import EXPORTERS, NEEDS, numpy_forward

    impl, variant = args.deploy_from
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.out / "models" if args.out else Path(tmp)
        model_dir.mkdir(parents=True, exist_ok=True)
        weights = model_dir / "weights.npz"
        print(f"training {impl.framework}/{variant} for the weights to deploy ...", file=sys.stderr, flush=True)
        trained = apply_verdict(run_one(impl, variant, cfg, args.timeout, ("--save-weights", str(weights))), reference)
        if trained.status != "ok":
            print(f"deploy: training with {trained.name} did not give weights to deploy: {trained.status} "
                  f"({trained.error})")
            return 1
        rows, notes = [], []
        for source in EXPORTERS:
            packages, extra = NEEDS[source]
            missing = [name for name in packages if find_spec(name) is None]
            if missing:
                notes.append(f"{source}: skipped, {', '.join(missing)} not installed: pip install -e '.[{extra}]'")
                continue
            print(f"exporting and timing {source} ...", file=sys.stderr, flush=True)
            out = Path(tmp) / f"{source}.json"
            cmd = [sys.executable, "-m", "deploy.bench", "--source", source, "--weights", str(weights),
                   "--model-dir", str(model_dir), *config_flags(cfg), "--json", str(out)]
            proc = subprocess.run(cmd, env=child_env(cfg, {"KERAS_BACKEND": "tensorflow"}), capture_output=True,
                                  text=True, timeout=args.timeout)
            if proc.returncode != 0 or not out.exists():
                notes.append(f"{source}: failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
                continue
            rows += json.loads(out.read_text())

        reason = node.unavailable_reason()
        if reason:
            notes.append(f"onnxruntime-node: skipped, {reason}")
        elif (model_dir / "predict_net.onnx").exists():
            import numpy as np

            x = make_serving_batch(cfg)
            w = np.load(weights)
            forward = numpy_forward(w["w1"].astype(cfg.dtype), w["w2"].astype(cfg.dtype))
            for batch in dict.fromkeys((1, cfg.batch)):
                y, times = node.serve(model_dir / "predict_net.onnx", x[:batch], 1 + cfg.warmup + 200, cfg.threads)
                stats = step_stats(times, cfg.warmup)
                rows.append({"model": "predict_net.onnx", "source": "predict_net", "runtime": "onnxruntime-node",
                             "batch": batch, "dtype": cfg.dtype, "median_s": stats.median_s, "iqr_s": stats.iqr_s,
                             "max_rel_err": max_rel_diff(y, forward(x[:batch]))})

    print(f"\ndeploying {trained.name}'s weights; N={cfg.batch} D_in={cfg.d_in} H={cfg.hidden} D_out={cfg.d_out}, "
          f"{cfg.threads} threads; median of 200 calls after {cfg.warmup} warm-up; max rel err: max|out - source| "
          f"/ max|source| on a fresh input (bound {cfg.dtype} {DEPLOY_TOLERANCE[cfg.dtype]:g})\n")
    if rows:
        print(format_deploy_table(rows, DEPLOY_TOLERANCE))
    if notes:
        print("\nnotes:\n" + "\n".join(f"  {n}" for n in notes))
    if args.out is not None:
        write_json_atomic(args.out / "deploy.json", {"config": cfg.to_dict(), "rows": rows, "notes": notes})
        print(f"wrote {args.out / 'deploy.json'} and the models in {args.out / 'models'}")
    failed = any(n.split(": ", 1)[1].startswith("failed") for n in notes)
    bad = [r for r in rows if r["max_rel_err"] is not None and r["max_rel_err"] > DEPLOY_TOLERANCE[r["dtype"]]]
    return 0 if rows and not failed and not bad else 1


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv)
    if args.deploy:
        return run_deploy(args, cfg, reference_for(cfg))
    runs = plan(args)
    reference = reference_for(cfg)
    results: list[RunResult] = []
    for i, (impl, variant, device) in enumerate(runs, start=1):
        run_cfg = dataclasses.replace(cfg, device=device)
        print(f"[{i}/{len(runs)}] {impl.framework}/{variant}/{device}/{cfg.dtype} ...", end="", file=sys.stderr, flush=True)
        result = apply_verdict(run_one(impl, variant, run_cfg, args.timeout), reference)
        print(f" {result.status}", file=sys.stderr, flush=True)
        results.append(result)
        if args.out is not None:  # rewritten after each run: an interrupted comparison keeps what finished
            write_json_atomic(args.out / "results.json", results_document(cfg, results))

    print(f"\nN={cfg.batch} D_in={cfg.d_in} H={cfg.hidden} D_out={cfg.d_out}, {cfg.steps} steps, lr={cfg.lr:g}, "
          f"{cfg.dtype}, seed {cfg.seed}, {cfg.threads} threads; median over steps after step 1 + {cfg.warmup} warm-up\n")
    print(format_table(results))
    matched, line = verdict(results)
    print(f"\n{line}")
    if args.out is not None:
        print(f"wrote {args.out / 'results.json'}")
    return 0 if matched else 1


if __name__ == "__main__":
    sys.exit(main())
