"""Where FACTOR in common/equivalence.py comes from: every correct implementation's x noise, and
every deliberately wrong copy's, over seeds, dtypes, sizes, minibatch mode and 2 workers.

    python benchmarks/equivalence_margins.py --out margins.json
    KERAS_BACKEND=jax python benchmarks/equivalence_margins.py --frameworks keras-jax --out jax.json
    python benchmarks/equivalence_margins.py --report-from docs/equivalence   # docs/equivalence.md's two tables

In-process runs (Keras on the backend this process's KERAS_BACKEND names), the data-parallel
engines through compare.py --workers 2. Prints the largest x noise of correct runs per dtype and
per implementation, and the smallest of the wrong copies that must be caught.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import noise  # noqa: E402
from common.config import RunConfig  # noqa: E402
from common.equivalence import judge  # noqa: E402
from common.problem import make_problem  # noqa: E402
from common.runner import apply_verdict, run_guarded  # noqa: E402
from common.sweep import ladder_configs  # noqa: E402
from implementations import REGISTRY  # noqa: E402
from tests.mutants import MUTANTS, mutant_run  # noqa: E402

# Each size and the share of --seeds it runs: the lecture's run is the one docs/equivalence.md quotes, on every seed.
SIZES = {
    "lecture 64x1000x100x10, 500 steps": (RunConfig(), 1.0),
    "small 8x20x6x3, 30 steps, lr 1e-3": (RunConfig(batch=8, d_in=20, hidden=6, d_out=3, steps=30, lr=1e-3), 0.4),
    "wide 128x2048x256x32, 100 steps": (ladder_configs(RunConfig(steps=100), 100)[1], 0.4),
    "minibatch M=512 N=64, 2 epochs": (RunConfig(samples=512, epochs=2), 0.4),
}


def record(rows: list[dict], **fields) -> None:
    """One run's figures, kept and printed as they come (a long campaign shows its progress)."""
    rows.append(fields)
    print(json.dumps(fields), flush=True)


def in_process(frameworks: list[str]) -> list:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    chosen = []
    for name in frameworks:
        impl = REGISTRY[name]
        if impl.missing() or (name.startswith("keras-") and name != f"keras-{backend}"):
            continue
        chosen.append((impl, importlib.import_module(impl.module)))
    return chosen


def correct_runs(frameworks: list[str], seeds: list[int], dtypes: list[str]) -> list[dict]:
    rows = []
    for dtype in dtypes:
        for size, (base, share) in SIZES.items():
            for seed in seeds[:max(1, round(share * len(seeds)))]:
                cfg = dataclasses.replace(base, dtype=dtype, seed=seed).validate()
                reference = noise.measure(cfg, make_problem(cfg))
                for impl, module in in_process(frameworks):
                    variants = impl.minibatch if cfg.minibatch else impl.variants
                    for variant in variants:
                        if variant == "compile" and seed != seeds[0]:
                            continue  # module's math, recompiled for ~10 s on every new config: one seed shows it
                        result = run_guarded(cfg, impl, variant, module.build)
                        if result.status == "skipped":
                            continue
                        apply_verdict(result, reference)
                        record(rows, framework=impl.name, variant=variant, dtype=dtype, size=size, seed=seed,
                               status=result.status, x_noise=result.x_noise, step=result.worst_step,
                               weights_x_noise=result.weights_x_noise, noise_cost_s=reference.cost_s)
    return rows


def data_parallel_runs(seeds: list[int], dtypes: list[str]) -> list[dict]:
    rows = []
    for dtype in dtypes:
        for seed in seeds:
            with tempfile.TemporaryDirectory() as out:
                subprocess.run([sys.executable, "compare.py", "--frameworks", "torch,tensorflow", "--workers", "2",
                                "--dtype", dtype, "--seed", str(seed), "--rounds", "1", "--out", out],
                               cwd=ROOT, capture_output=True, text=True, timeout=1800)
                for run in json.loads((Path(out) / "results.json").read_text())["runs"]:
                    record(rows, framework=run["framework"], variant=f"{run['variant']} x{run['world_size']}",
                           dtype=dtype, size="lecture, 2 workers", seed=seed, status=run["status"],
                           x_noise=run["x_noise"], step=run["worst_step"], weights_x_noise=run["weights_x_noise"])
    return rows


def mutant_runs(seeds: list[int], dtypes: list[str]) -> list[dict]:
    rows = []
    for dtype in dtypes:
        for seed in seeds:
            cfg = RunConfig(dtype=dtype, seed=seed)
            problem = make_problem(cfg)
            reference = noise.measure(cfg, problem)
            for mutant in MUTANTS:
                run = mutant_run(cfg, problem, mutant)
                verdict = judge(run.losses, reference, dtype, (run.w1, run.w2))
                rows.append(dict(mutant=mutant.name, dtype=dtype, seed=seed, must_catch=dtype in mutant.must_catch,
                                 status=verdict.status, x_noise=verdict.x_noise,
                                 weights_x_noise=verdict.weights_x_noise))
    return rows


def summary(correct: list[dict], wrong: list[dict]) -> list[str]:
    lines = []
    for dtype in sorted({r["dtype"] for r in correct + wrong}):
        ok = [r for r in correct if r["dtype"] == dtype]
        if ok:
            worst = max(ok, key=lambda r: max(r["x_noise"] or 0, r["weights_x_noise"] or 0))
            lines.append(f"{dtype}: {len(ok)} correct runs, largest x noise {worst['x_noise']:.2f} (losses) / "
                         f"{max(r['weights_x_noise'] or 0 for r in ok):.2f} (weights): {worst['framework']}/"
                         f"{worst['variant']}, {worst['size']}, seed {worst['seed']}, step {worst['step']}")
            for name in sorted({(r["framework"], r["variant"]) for r in ok}):
                mine = [r for r in ok if (r["framework"], r["variant"]) == name]
                lines.append(f"  {name[0]}/{name[1]}: {max(r['x_noise'] or 0 for r in mine):.2f}, weights "
                             f"{max(r['weights_x_noise'] or 0 for r in mine):.2f}")
        for mutant in MUTANTS:
            mine = [r for r in wrong if r["dtype"] == dtype and r["mutant"] == mutant.name]
            if mine:
                seen = [max(r["x_noise"] or 0, r["weights_x_noise"] or 0) for r in mine]
                caught = sum(r["status"] == "mismatch" for r in mine)
                lines.append(f"  wrong copy, {mutant.name}{' (must catch)' if dtype in mutant.must_catch else ''}: "
                             f"smallest {min(seen):.3g}x noise, caught {caught}/{len(mine)}")
    return lines


def markdown(correct: list[dict], wrong: list[dict]) -> str:
    """docs/equivalence.md's tables: each implementation's largest x noise per dtype, then each wrong copy's smallest."""
    from common.equivalence import FACTOR

    dtypes = ("float32", "float64")
    lines = ["| implementation/variant | " + " | ".join(f"{d}: losses / weights" for d in dtypes) + " |",
             "|---|" + "---|" * len(dtypes)]
    for name in dict.fromkeys(f"{r['framework']}/{r['variant']}" for r in correct):
        cells = []
        for dtype in dtypes:
            mine = [r for r in correct if f"{r['framework']}/{r['variant']}" == name and r["dtype"] == dtype]
            if not mine:  # keras-torch: float64 is refused, a skipped row
                cells.append("skipped")
                continue
            losses, weights = (max(r[key] or 0 for r in mine) for key in ("x_noise", "weights_x_noise"))
            cells.append(f"{losses:.2f} / {weights:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    worst = [max((max(r["x_noise"] or 0, r["weights_x_noise"] or 0) for r in correct if r["dtype"] == d), default=0)
             for d in dtypes]
    lines.append("| **largest; FACTOR** | " + " | ".join(f"**{w:.2f}; {FACTOR[d]:g}**" for w, d in zip(worst, dtypes))
                 + " |")
    lines += ["", "| wrong copy | " + " | ".join(dtypes) + " |", "|---|" + "---|" * len(dtypes)]
    for mutant in MUTANTS:
        cells = []
        for dtype in dtypes:
            mine = [r for r in wrong if r["mutant"] == mutant.name and r["dtype"] == dtype]
            seen = min(max(r["x_noise"] or 0, r["weights_x_noise"] or 0) for r in mine)
            caught = sum(seen_one > FACTOR[dtype] for seen_one in
                         (max(r["x_noise"] or 0, r["weights_x_noise"] or 0) for r in mine))
            must = " (*must*)" if dtype in mutant.must_catch else ""
            cells.append(f"{seen:.3g}x, caught {caught}/{len(mine)}{must}")
        lines.append(f"| {mutant.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_from(folder: Path) -> int:
    correct, wrong = [], []
    for path in sorted(folder.glob("*.json"), key=lambda p: (p.name != "margins.json", p.name)):
        doc = json.loads(path.read_text())
        correct += doc["correct"]
        wrong += doc["wrong"]
    print(markdown(correct, wrong))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-from", type=Path, metavar="DIR", help="run nothing: docs/equivalence.md's tables from DIR/*.json")
    parser.add_argument("--frameworks", default=",".join(REGISTRY), help="registry names (default all)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--workers", action="store_true", help="also torch DDP and TF multi-worker, 2 workers")
    parser.add_argument("--mutants", action="store_true", help="also the wrong copies (tests/mutants.py)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.report_from is not None:
        return report_from(args.report_from)
    if args.out is None:
        parser.error("--out is required (or --report-from)")
    seeds, dtypes = list(range(args.seeds)), args.dtypes.split(",")
    start = time.time()
    correct = correct_runs(args.frameworks.split(","), seeds, dtypes)
    correct += data_parallel_runs(seeds[:max(1, len(seeds) // 5)], dtypes) if args.workers else []
    wrong = mutant_runs(seeds, dtypes) if args.mutants else []
    lines = summary(correct, wrong) + [f"took {time.time() - start:.0f} s"]
    args.out.write_text(json.dumps({"correct": correct, "wrong": wrong, "summary": lines}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
