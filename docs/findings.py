"""README's findings, each figure read from the committed results it names (run nothing).

python docs/findings.py   prints them as Markdown; README holds the output between generated
markers, so that docs/update_readme.py rewrites them and tests/test_readme.py finds them stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the harness is beside docs/

from common.comparison import rows_of  # noqa: E402
from common.equivalence import FACTOR  # noqa: E402
from common.result import load_results  # noqa: E402
from implementations import ALIASES, REGISTRY  # noqa: E402

CPU = "docs/cpu/results.json"
FLOAT64 = "docs/cpu-float64/results.json"
HARNESS_LIMIT = 0.05  # the harness cost a row may have and still be said to cost nothing worth naming


def rows(path: str):
    doc, results = load_results(ROOT / path)
    measurement = doc.get("measurement") or {}
    skipped = [r for r in results if r.status == "skipped"]
    return [f for f in rows_of(results, measurement) if f.status == "ok"], measurement, len(results), skipped


def span(values, fmt="{:.2f}") -> str:
    low, high = min(values), max(values)
    return fmt.format(low) if fmt.format(low) == fmt.format(high) else f"{fmt.format(low)}-{fmt.format(high)}"


def findings() -> list[str]:
    cpu, measurement, cpu_runs, _ = rows(CPU)
    f64, _, f64_runs, f64_skipped = rows(FLOAT64)
    by_name = {f"{f.framework}/{f.variant}": f for f in cpu}
    libraries = measurement["libraries"]
    kernels_of = measurement["kernels_of"]

    closest = min(cpu, key=lambda f: f.x_floor)
    keras = [f for f in cpu if f.framework in ALIASES["keras"]]
    slowest_keras = max(keras, key=lambda f: f.x_shape_floor)
    numpy_blas = next(impl.kernels for impl in REGISTRY.values() if impl.first_rung)
    by_kernels = sorted(cpu, key=lambda f: f.x_kernels)
    fast, slow = by_kernels[0], by_kernels[-1]
    costly = [f for f in cpu if f.harness_cost is not None and abs(f.harness_cost) > HARNESS_LIMIT]
    compiled = [by_name[n] for n in ("torch/compile", "jax/flax")]
    eager = by_name["torch/tensors"]

    return [
        f"1. **Every implementation computes the same thing.** All {len(cpu)} of the {cpu_runs} float32 runs of "
        f"`{CPU}` match the reference at every step and in their final weights, within "
        f"{FACTOR['float32']:g}x the measured rounding noise, and {len(f64)} float64 runs of `{FLOAT64}` within "
        f"{FACTOR['float64']:g}x" + (f" ({', '.join(f'`{r.framework}/{r.variant}`' for r in f64_skipped)} "
                                      f"skipped: {f64_skipped[0].error})" if f64_skipped else "") +
        ". In float64 every deliberately wrong copy of the reference is caught, even a learning rate off at the "
        "last step only; in float32 some hide in the rounding noise ([equivalence](docs/equivalence.md)).",
        f"2. **At the lecture's size, overhead decides, not arithmetic.** No run of `{CPU}` reaches the compute "
        f"floor: the closest is `{closest.framework}/{closest.variant}` at {closest.x_floor:.2f}x it. Keras, on its "
        f"{len({f.framework for f in keras})} backends, is {span([f.x_shape_floor for f in keras], '{:.1f}')}x the shape floor, and "
        f"its slowest row, `{slowest_keras.framework}/{slowest_keras.variant}`, spends {slowest_keras.x_overhead:.1f}x "
        "its own kernels' time per step ([measurement](docs/measurement.md)).",
        f"3. **The kernels differ too.** The same five matmuls and elementwise work take {fast.x_kernels:.2f}x "
        f"({kernels_of[fast.framework]}) to {slow.x_kernels:.2f}x ({kernels_of[slow.framework]}) the fastest "
        f"library's time; the machine's peak is {measurement['peak_library']}'s matmul, "
        f"{measurement['peak_gflops']:.0f} GFLOP/s, against {libraries[numpy_blas]['peak_gflops']:.0f} for NumPy's "
        "BLAS as this machine configures it.",
        "4. **A compiled graph pays up front.** " + " and ".join(
            f"`{f.framework}/{f.variant}` takes {f.setup_s:.1f} s of setup" for f in compiled) +
        f", against {eager.setup_s:.2f} s for `torch/tensors`, and at this size neither step is faster for it "
        f"({' and '.join(f'{1e3 * f.median_s:.3f}' for f in compiled)} against {1e3 * eager.median_s:.3f} ms).",
        "5. **The harness does not slow what it times.** Its per-step clock costs within "
        f"{HARNESS_LIMIT:.0%} of a step for every row of `{CPU}`" + (
            " but " + ", ".join(f"`{f.framework}/{f.variant}` ({f.harness_cost:+.1%}, 95% CI "
                                f"{f.harness_low:+.1%} to {f.harness_high:+.1%})" for f in costly) if costly else "") +
        "; each cost is given with its interval ([measurement](docs/measurement.md)).",
    ]


def main() -> int:
    print("Each finding is read from the committed file it names (`python docs/findings.py`).\n")
    print("\n".join(findings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
