"""The same comparison run twice: how far each row's median moved, and whether the intervals saw it coming.

    python compare.py --out run1 && python compare.py --out run2
    python benchmarks/stability.py run1/results.json run2/results.json [--markdown]

For every run in both files: the two medians, their ratio (second / first), and whether each
run's 95% interval of the median (common.confidence) holds the other run's median. An interval
measures the noise *inside* one run; when a second run's median falls outside it, the rows moved
by more than that, between processes and minutes on this shared machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.figures import figures  # noqa: E402
from common.report import aligned, markdown  # noqa: E402
from common.result import SchemaError, load_results  # noqa: E402


def rows_of(path: Path) -> dict:
    _, results = load_results(path)
    return {f.name: f for f in figures(results, None) if f.median_s}


def table(first: dict, second: dict) -> tuple[list[list[str]], int, int]:
    """The comparison's rows (header first), how many rows both timed with intervals, and in how
    many both intervals held the other run's median."""
    body = [["run", "median 1 ms (95% CI)", "median 2 ms (95% CI)", "2 / 1", "1's CI holds 2", "2's CI holds 1"]]
    both = covered = 0
    for name, a in first.items():
        b = second.get(name)
        if b is None:
            continue
        if a.median_low_s is None or b.median_low_s is None:  # timed in one call: no interval
            body.append([name, f"{a.median_s * 1e3:.3f}", f"{b.median_s * 1e3:.3f}",
                         f"{b.median_s / a.median_s:.2f}", "-", "-"])
            continue
        both += 1
        holds = [f.median_low_s <= g.median_s <= f.median_high_s for f, g in ((a, b), (b, a))]
        covered += all(holds)
        def cell(f):
            return f"{f.median_s * 1e3:.3f} ({f.median_low_s * 1e3:.3f}-{f.median_high_s * 1e3:.3f})"

        body.append([name, cell(a), cell(b), f"{b.median_s / a.median_s:.2f}",
                     *("yes" if h else "no" for h in holds)])
    return body, both, covered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    try:
        body, both, covered = table(rows_of(args.first), rows_of(args.second))
    except SchemaError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(markdown(body) if args.markdown else "\n".join(aligned(body)))
    ratios = sorted(float(row[3]) for row in body[1:])
    if ratios:
        print(f"\n{len(ratios)} runs in both; second / first median from {ratios[0]:.2f} to {ratios[-1]:.2f}; "
              f"both intervals held the other run's median in {covered} of the {both} with intervals")
    return 0


if __name__ == "__main__":
    sys.exit(main())
