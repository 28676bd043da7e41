"""`python -m implementations.<module>`: one implementation run alone, checked against NumPy.

Every module ends with main(<registry name>, build); its variants, versions and minibatch
support come from the registry, so the command line is the same for every framework.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from common.config import DEVICES, CliParser, ConfigError, add_config_args, config_from_args
from common.problem import make_problem
from common.runner import Build, apply_verdict, profile_line, run_guarded, summary_line
from implementations import REGISTRY, Implementation


def main(name: str | Implementation, build: Build, argv: list[str] | None = None, module: str | None = None,
         started: tuple[float | None, float | None] | None = None) -> None:
    """Parse the shared flags, run one variant, print its summary line; exit 0 when ok or skipped.
    `module` and `started` (its start-up's seconds and MB) are given by implementations.forkserver,
    whose forked process is not `python -m module` and whose import ran before it."""
    from common import noise
    from common.memory import process_age_s, rss_mb

    # The module that called main() has imported its framework: what the run cost before build()
    start_s, import_mb = started or (process_age_s(), rss_mb())
    # A forked process holds what its server held, give or take the pages it mapped in around those
    # (forkserver.map_in): its memory figures are counted from the server's
    resident_mb = rss_mb()
    offset = import_mb - resident_mb if started and None not in (import_mb, resident_mb) else 0.0

    impl = REGISTRY[name] if isinstance(name, str) else name
    module = module or sys.modules["__main__"].__spec__.name
    variants = impl.variants_of(module)
    parser = CliParser(prog=f"python -m {module}",
                       description=f"Train the two-layer net with {impl.name} alone and check it against NumPy.")
    add_config_args(parser)
    parser.add_argument("--variant", choices=variants, default=variants[0], help=f"default {variants[0]}")
    parser.add_argument("--device", default="cpu", help=f"one of {', '.join(DEVICES)} (default cpu)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the RunResult here as JSON")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the comparison with NumPy (compare.py does it once itself)")
    parser.add_argument("--save-weights", metavar="PATH", type=Path,
                        help="write the trained w1, w2 here (.npz), e.g. for export to ONNX")
    parser.add_argument("--artifacts", metavar="DIR", type=Path,
                        help="write what the run built into DIR: the TensorFlow graph that ran (graph.pbtxt), "
                             "ONNX's init/train/loop nets and predict_net.onnx with the trained weights")
    parser.add_argument("--harness-cost", action="store_true",
                        help="after training, run the same steps with no per-step clock or loss fetch and report "
                             "what the harness's measurement costs")
    parser.add_argument("--profile", metavar="DIR", type=Path,
                        help="instead of timing, warm up and run up to 50 steps under the framework's own profiler: "
                             "DIR/trace.json (open it in ui.perfetto.dev) and a per-step breakdown")
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.profile is not None:
        cfg = dataclasses.replace(cfg, profile=True)

    result = run_guarded(cfg, impl, args.variant, build, save_weights=args.save_weights, artifacts=args.artifacts,
                         harness_cost=args.harness_cost, profile=args.profile)
    if result is None:  # a data-parallel worker other than rank 0: rank 0 reports for all
        sys.exit(0)
    result.start_s, result.import_mb = start_s, import_mb
    if offset:
        result.peak_mb = result.peak_mb and result.peak_mb + offset
        result.build_mb = result.build_mb and result.build_mb + offset
    if result.status not in ("skipped", "failed") and not args.no_check and args.profile is None:
        apply_verdict(result, noise.measure(cfg, make_problem(cfg)))
    print(summary_line(result))
    if result.profile:
        print(profile_line(result))
    code = 0 if result.status in ("ok", "skipped") else 1
    if args.json:
        args.json.write_text(result.to_json())
    if args.json and cfg.workers == 1:
        # compare.py's child: everything it reports is written, and the framework's own teardown
        # (TensorFlow's takes over a second) would only hold up the comparison's next run. Not in
        # a data-parallel group, whose peers may still be leaving with this process's help.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
