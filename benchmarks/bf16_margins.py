"""Where FACTOR["bf16-mixed"] comes from, and how far inside the derived bounds the noise sits: every
bf16-mixed run's x noise over seeds, every wrong bf16 copy's, and the bounds against the ensemble.

    python benchmarks/bf16_margins.py --seeds 5 --out docs/mixed-precision/margins.json
    python benchmarks/bf16_margins.py --report-from docs/mixed-precision/margins.json   # the docs' tables

Per seed at the lecture's size: the reference and its noise (common/noise.py), the ensemble's
members against the worst-case and the probabilistic bound (common/bf16_bound.py), the wrong
copies (tests/bf16_mutants.py) judged and measured in bound units, and every implementation
through `compare.py --precision bf16-mixed` (one process per run, each Keras backend its own).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import bf16_bound, noise  # noqa: E402
from common.config import RunConfig  # noqa: E402
from common.equivalence import FACTOR, judge  # noqa: E402
from common.problem import make_problem  # noqa: E402
from tests.bf16_mutants import BF16_MUTANTS, bf16_mutant_run  # noqa: E402

FRAMEWORKS = "torch,jax,keras"  # those with bf16-mixed runs (the registry's bf16 fields)


def in_bound_units(losses, reference_losses, found) -> float:
    """A run's largest |loss_k - ref_k| over the bound of step k."""
    n = min(len(losses), len(found))
    diff = np.abs(np.asarray(losses[:n], np.float64) - np.asarray(reference_losses[:n], np.float64))
    return float(np.max(diff / np.array([b.total for b in found[:n]])))


def seed_rows(seed: int, timeout_s: float) -> dict:
    cfg = RunConfig(precision="bf16-mixed", seed=seed)
    problem = make_problem(cfg)
    reference = noise.measure(cfg, problem)
    ref = np.asarray(reference.losses, np.float64)
    found = {model: bf16_bound.bounds(problem.x, problem.y, problem.w1, problem.w2, cfg.lr, cfg.steps, model)
             for model in ("worst", "rms")}
    bounds = {model: bf16_bound.ensemble_inside(reference.deviation, ref, found[model]) for model in found}
    rms = found["rms"]
    wrong = []
    for mutant in BF16_MUTANTS:
        run = bf16_mutant_run(cfg, problem, mutant)
        verdict = judge(run.losses, reference, "bf16-mixed", (run.w1, run.w2))
        wrong.append(dict(mutant=mutant.name, seed=seed, must_catch=mutant.must_catch, status=verdict.status,
                          x_noise=verdict.x_noise, step=verdict.worst_step, weights_x_noise=verdict.weights_x_noise,
                          rms_units=in_bound_units(run.losses, ref, rms)))
        print(json.dumps(wrong[-1]), flush=True)
    correct = []
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "compare.py", "--precision", "bf16-mixed", "--frameworks", FRAMEWORKS,
                        "--seed", str(seed), "--rounds", "1", "--out", out], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout_s)
        for run in json.loads((Path(out) / "results.json").read_text())["runs"]:
            if run["status"] == "skipped":
                continue
            losses = run.get("losses") or []
            correct.append(dict(framework=run["framework"], variant=run["variant"], seed=seed, status=run["status"],
                                x_noise=run["x_noise"], step=run["worst_step"],
                                weights_x_noise=run["weights_x_noise"],
                                rms_units=in_bound_units(losses, ref, rms) if losses else None))
            print(json.dumps(correct[-1]), flush=True)
    return dict(seed=seed, bounds=bounds, wrong=wrong, correct=correct,
                noise_cost_s=reference.cost_s)


def markdown(doc: dict) -> str:
    """The docs' tables: correct runs, the wrong copies, and the bounds against the ensemble."""
    factor = FACTOR["bf16-mixed"]
    seeds = doc["seeds"]
    correct = [r for s in seeds for r in s["correct"]]
    lines = [f"Seeds {', '.join(str(s['seed']) for s in seeds)} at the lecture's size, 500 steps; x noise is the "
             f"worst step's error over the ensemble's noise (FACTOR {factor:g}); rms units: over the "
             "probabilistic bound.", "",
             "| run | x noise, losses (largest) | weights | rms bound units | ok |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(f"{r['framework']}/{r['variant']}" for r in correct):
        mine = [r for r in correct if f"{r['framework']}/{r['variant']}" == name]
        lines.append(f"| {name} | {max(r['x_noise'] or 0 for r in mine):.2f} | "
                     f"{max(r['weights_x_noise'] or 0 for r in mine):.2f} | "
                     f"{max(r['rms_units'] or 0 for r in mine):.2f} | "
                     f"{sum(max(r['x_noise'] or 0, r['weights_x_noise'] or 0) <= factor for r in mine)}/{len(mine)} |")
    worst = max(max(r["x_noise"] or 0, r["weights_x_noise"] or 0) for r in correct)
    lines.append(f"| **largest; FACTOR** | **{worst:.2f}; {factor:g}** (margin {factor / worst:.1f}x) | | | |")
    lines += ["", "| wrong copy | smallest x noise | largest | caught | rms bound units (smallest) |",
              "|---|---|---|---|---|"]
    for mutant in BF16_MUTANTS:
        mine = [r for s in seeds for r in s["wrong"] if r["mutant"] == mutant.name]
        seen = [max(r["x_noise"] or 0, r["weights_x_noise"] or 0) for r in mine]
        must = " (*must*)" if mutant.must_catch else ""
        lines.append(f"| {mutant.name} | {min(seen):.3g} | {max(seen):.3g} | "
                     f"{sum(x > factor for x in seen)}/{len(mine)}{must} | "
                     f"{min(r['rms_units'] for r in mine):.3g} |")
    lines += ["", "| bound | smallest bound / ensemble deviation (step) | at step 1 | median over steps |",
              "|---|---|---|---|"]
    for model, label in (("worst", "worst case"), ("rms", f"probabilistic, {bf16_bound.LAMBDA:g} sigma")):
        rows = [s["bounds"][model] for s in seeds]
        low = min(rows, key=lambda r: r["min_bound_over_noise"])
        lines.append(f"| {label} | {low['min_bound_over_noise']:.3g} (step {low['at_step']}) | "
                     f"{min(r['step1_bound_over_noise'] for r in rows):.3g} | "
                     f"{min(r['median_bound_over_noise'] for r in rows):.3g} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per seed's compare.py")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report-from", type=Path, metavar="JSON", help="run nothing: print the docs' tables")
    args = parser.parse_args()
    if args.report_from is not None:
        print(markdown(json.loads(args.report_from.read_text())))
        return 0
    if args.out is None:
        parser.error("--out is required (or --report-from)")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    start = time.time()
    doc = {"command": "python benchmarks/bf16_margins.py " + " ".join(sys.argv[1:]), "factor": FACTOR["bf16-mixed"],
           "seeds": []}
    for seed in range(args.seeds):
        doc["seeds"].append(seed_rows(seed, args.timeout))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))  # kept after every seed: a long campaign loses nothing
    doc["elapsed_s"] = time.time() - start
    args.out.write_text(json.dumps(doc, indent=1))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
