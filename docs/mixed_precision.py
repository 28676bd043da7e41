"""Does bf16-mixed pay on this CPU: each run's step time in bf16-mixed over its float32 one, with 95% intervals.

python docs/mixed_precision.py            the lecture's size (docs/mixed-precision/lecture/results.json)
python docs/mixed_precision.py --sweep    every size of the sweep (docs/mixed-precision/sweep/results.json)

Both files come from one compare.py run each, `--precision full,bf16-mixed`, so a run's two precisions
ran interleaved, round by round, on the same machine. Prints Markdown (docs/mixed-precision.md holds
it between generated markers); nothing is run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the harness is beside docs/

from common.confidence import indistinguishable, ratio_interval  # noqa: E402
from common.figures import figures  # noqa: E402
from common.result import load_results  # noqa: E402

LECTURE = "docs/mixed-precision/lecture/results.json"
SWEEP = "docs/mixed-precision/sweep/results.json"


def pairs(path: str, results=None) -> list[tuple]:
    """(float32 row, bf16-mixed row or the skipped one) of each run, by size then table order
    (`results`: path's, when already read)."""
    results = load_results(ROOT / path)[1] if results is None else results
    rows = figures(results, None)
    by_key = {(f.framework, f.label, f.device, f.flops_per_step, f.dtype): f for f in rows}
    out = []
    for f in rows:
        if f.dtype == "float32":
            out.append((f, by_key.get((f.framework, f.label, f.device, f.flops_per_step, "bf16-mixed"))))
    return out


def ratio_cell(f32, bf16) -> str:
    if bf16 is None or not bf16.median_s or not f32.median_s:
        return ""
    interval = ratio_interval(bf16.timed, f32.timed)
    ratio = bf16.median_s / f32.median_s
    if interval is None:
        return f"{ratio:.2f}"
    mark = " =" if indistinguishable(interval) else ""
    return f"{ratio:.2f} ({interval[0]:.2f}-{interval[1]:.2f}){mark}"


def ms(f) -> str:
    if f is None or not f.median_s:
        return ""
    return f"{f.median_s * 1e3:.3f} ({f.median_low_s * 1e3:.3f}-{f.median_high_s * 1e3:.3f})" \
        if f.median_low_s is not None else f"{f.median_s * 1e3:.3f}"


def verdict(bf16) -> str:
    if bf16 is None:
        return "not run"
    if bf16.status == "skipped":
        return "skipped: see below"
    return f"{bf16.status}, {bf16.x_noise:.2f}x noise" if bf16.x_noise is not None else bf16.status


def lecture_table(path: str) -> str:
    _, results = load_results(ROOT / path)
    found = pairs(path, results)
    lines = ["| run | float32 ms (95% CI) | bf16-mixed ms (95% CI) | bf16 / float32 (95% CI) | final loss, float32 / bf16 "
             "| bf16-mixed verdict |", "|---|---|---|---|---|---|"]
    for f32, bf16 in found:
        losses = " / ".join("" if f is None or f.final_loss is None else f"{f.final_loss:.3g}" for f in (f32, bf16))
        lines.append(f"| {f32.framework}/{f32.label} | {ms(f32)} | {ms(bf16)} | {ratio_cell(f32, bf16)} | {losses} | "
                     f"{verdict(bf16)} |")
    grouped: dict[tuple[str, str], list[str]] = {}  # (framework, why) -> its variants
    for r in results:
        if r.dtype == "bf16-mixed" and r.status == "skipped":
            grouped.setdefault((r.framework, r.error), []).append(r.variant)
    reasons = [f"{framework}/{', '.join(variants)}: {why}" for (framework, why), variants in grouped.items()]
    lines += ["", "= marks a ratio whose 95% interval holds 1. Without a bf16-mixed run:", ""]
    lines += [f"- {reason}" for reason in reasons]
    return "\n".join(lines)


def sweep_table(path: str) -> str:
    found = pairs(path)
    sizes = sorted({f32.flops_per_step for f32, _ in found})
    shapes = {}
    for f32, _ in found:
        c = f32.config
        shapes[f32.flops_per_step] = f"{c.batch}x{c.d_in}x{c.hidden}x{c.d_out}"
    runs = list(dict.fromkeys(f"{f32.framework}/{f32.label}" for f32, _ in found))
    lines = ["| run | " + " | ".join(f"{shapes[s]} ({s / 1e6:,.0f} MFLOP)" for s in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for name in runs:
        cells = []
        for size in sizes:
            match = [(a, b) for a, b in found if f"{a.framework}/{a.label}" == name and a.flops_per_step == size]
            cells.append(ratio_cell(*match[0]) if match else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Each cell: bf16-mixed step time over float32's (95% interval); = where it holds 1."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/mixed_precision.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help=f"the sweep's table, from {SWEEP}")
    args = parser.parse_args(argv)
    print(sweep_table(SWEEP) if args.sweep else lecture_table(LECTURE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
