"""Running one implementation: build, time the steps, judge, and the standalone CLI."""

from __future__ import annotations

import functools
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from common.config import DEVICES, CliParser, ConfigError, RunConfig, add_config_args, config_from_args
from common.equivalence import judge
from common.problem import Problem, make_problem
from common.result import RunResult
from common.timing import Trainer, step_stats, time_steps

TrainFn = Callable[[RunConfig, Problem, str], RunResult]


def run_training(cfg: RunConfig, framework: str, variant: str, build: Callable[[], Trainer],
                 versions: dict, note: str | None = None, save_weights: Path | None = None) -> RunResult:
    """Time build() (setup) and cfg.steps SGD steps of the Trainer it returns.

    With `save_weights`, the trained (w1, w2) are written there as .npz (untimed).
    """
    from threadpoolctl import threadpool_limits

    result = new_result(cfg, framework, variant, versions=versions, note=note)
    # Caps the BLAS/OpenMP pools already loaded in this process (NumPy's among them), which
    # environment variables can no longer reach once the library is imported.
    with threadpool_limits(limits=cfg.worker_threads):
        start_ns = time.perf_counter_ns()
        trainer = build()
        build_s = (time.perf_counter_ns() - start_ns) * 1e-9
        clock = time_steps(trainer, cfg.steps)
    result.losses, result.step_times_s, result.data_times_s = clock.losses, clock.times_s, clock.data_times_s
    result.setup_s = build_s + result.step_times_s[0]
    if save_weights is not None:
        w1, w2 = trainer.weights()
        np.savez(save_weights, w1=np.asarray(w1), w2=np.asarray(w2))
    return result


def refuse_minibatch(cfg: RunConfig, variant: str, supported: tuple[str, ...]) -> None:
    """The skip for a variant that trains on the lecture's one batch only."""
    if cfg.minibatch and variant not in supported:
        raise NotImplementedError(f"minibatch mode (--samples) is built for {', '.join(supported)}; "
                                  f"{variant} trains on the lecture's one batch only")


def new_result(cfg: RunConfig, framework: str, variant: str, **fields) -> RunResult:
    """The RunResult of a run of `cfg`, with what the config says about it filled in."""
    return RunResult(framework, variant, cfg.device, cfg.dtype, config=cfg.to_dict(), threads=cfg.threads,
                     feed=cfg.feed if cfg.minibatch else None, world_size=cfg.workers, **fields)


def skipped(cfg: RunConfig, framework: str, variant: str, reason: str) -> RunResult:
    return new_result(cfg, framework, variant, status="skipped", error=reason)


def run_guarded(cfg: RunConfig, framework: str, variant: str, train: TrainFn) -> RunResult:
    """train() with its failures turned into rows: NotImplementedError is a skip, anything else a failure.

    None from train() means a data-parallel worker that does not report (rank 0 does)."""
    try:
        return train(cfg, make_problem(cfg), variant)
    except NotImplementedError as exc:
        return skipped(cfg, framework, variant, str(exc) or "not supported")
    except Exception as exc:  # a framework error must become a row, not a lost run
        traceback.print_exc(file=sys.stderr)
        failed = skipped(cfg, framework, variant, f"{type(exc).__name__}: {exc}")
        failed.status = "failed"
        return failed


def apply_verdict(result: RunResult, reference: list[float]) -> RunResult:
    """Set status, max_rel_err and worst_step from the comparison with the reference losses."""
    if result.status in ("skipped", "failed"):
        return result
    verdict = judge(result.losses, reference, result.dtype)
    result.status, result.max_rel_err, result.worst_step = verdict.status, verdict.max_rel_err, verdict.worst_step
    result.error = verdict.error
    return result


def summary_line(result: RunResult) -> str:
    head = f"{result.name}: {result.status}"
    if not result.ran or result.status == "failed":
        return f"{head} ({result.error})"
    parts = [head]
    if result.losses:
        parts.append(f"final loss {result.losses[-1]:.6g}")
    if result.max_rel_err is not None:
        parts.append(f"max rel err {result.max_rel_err:.2e} at step {result.worst_step}")
    stats = step_stats(result.step_times_s, result.config.get("warmup", 0))
    if stats:
        parts.append(f"median step {stats.median_s * 1e3:.3f} ms (IQR {stats.iqr_s * 1e3:.3f})")
    if result.setup_s is not None:
        parts.append(f"setup {result.setup_s:.3f} s")
    if result.error:
        parts.append(result.error)
    return ", ".join(parts)


def main(framework: str, variants: tuple[str, ...], train: TrainFn, argv: list[str] | None = None,
         options: dict[str, dict] | None = None) -> None:
    """`python -m <module>`: run one variant, check it against NumPy, optionally write its RunResult.

    `options` adds module-specific flags (flag -> argparse keywords); their values reach
    train() as keyword arguments. compare.py never passes them.
    """
    from common.reference import reference_losses

    parser = CliParser(prog=f"python -m {sys.modules['__main__'].__spec__.name}",
                       description=f"Train the two-layer net with {framework} alone and check it against NumPy.")
    add_config_args(parser)
    parser.add_argument("--variant", choices=variants, default=variants[0], help=f"default {variants[0]}")
    parser.add_argument("--device", default="cpu", help=f"one of {', '.join(DEVICES)} (default cpu)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the RunResult here as JSON")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the comparison with NumPy (compare.py does it once itself)")
    parser.add_argument("--save-weights", metavar="PATH", type=Path,
                        help="write the trained w1, w2 here (.npz), e.g. for export to ONNX")
    extra_dests = [parser.add_argument(flag, **kwargs).dest for flag, kwargs in (options or {}).items()]
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))

    extras = {dest: getattr(args, dest) for dest in [*extra_dests, "save_weights"]}
    result = run_guarded(cfg, framework, args.variant, functools.partial(train, **extras))
    if result is None:  # a data-parallel worker other than rank 0: rank 0 reports for all
        sys.exit(0)
    if result.status not in ("skipped", "failed") and not args.no_check:
        apply_verdict(result, reference_losses(cfg, make_problem(cfg)))
    print(summary_line(result))
    if args.json:
        args.json.write_text(result.to_json())
    sys.exit(0 if result.status in ("ok", "skipped") else 1)
