"""README's findings, each figure read from the committed results it names (run nothing).

python docs/findings.py            prints them as Markdown; README holds the output between generated
                                   markers, so that docs/update_readme.py rewrites them and
                                   tests/test_readme.py finds them stale.
python docs/findings.py --harness  every row's harness cost and its interval (docs/measurement.md)
python docs/findings.py --feed     what docs/feed's table says, for docs/feeding-the-data.md
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


def harness_table() -> str:
    """Every row's harness cost in `CPU`, with its 95% interval over its lapped/bare pairs, as Markdown."""
    doc, results = load_results(ROOT / CPU)
    pairs = {r.name: len(r.harness_pair_costs) for r in results}
    cpu = [f for f in rows_of(results, doc.get("measurement") or {}) if f.status == "ok"]
    measured = [f for f in cpu if f.harness_cost is not None]
    within = [f for f in measured if abs(f.harness_cost) <= HARNESS_LIMIT]
    holds_0 = [f for f in measured if f.harness_low is not None and f.harness_low <= 0 <= f.harness_high]
    lines = [f"From `{CPU}`: {len(within)} of its {len(measured)} measured rows cost within {HARNESS_LIMIT:.0%} "
             f"of a step, and the 95% interval of {len(holds_0)} holds 0 ({len(cpu) - len(measured)} rows run "
             "every step in one call: nothing per step to measure).", "",
             "| row | harness % | 95% CI | pairs | holds 0 |", "|---|---|---|---|---|"]
    for f in measured:
        low, high = f.harness_low, f.harness_high
        lines.append(f"| `{f.framework}/{f.variant}` | {100 * f.harness_cost:+.1f} | "
                     + (f"{100 * low:+.1f} to {100 * high:+.1f}" if low is not None else "") +
                     f" | {pairs[f.name]} | {'yes' if f in holds_0 else 'no'} |")
    return "\n".join(lines)


FEED = "docs/feed/results.json"


def feed_notes() -> str:
    """docs/feeding-the-data.md's reading of `FEED`, each figure read from it."""
    row = {f"{f.framework}/{f.label}": f for f in rows(FEED)[0]}
    cfg = next(iter(row.values())).config

    def ratio(a: str, b: str) -> str:
        return f"{row[a].median_s / row[b].median_s:.2f}x"

    def data_us(name: str) -> str:
        return f"{1e6 * row[name].data_median_s:.0f} us"

    cheap = [row[n] for n in ("numpy/manual+copy", "torch/module+copy", "onnx/step+copy")]
    share = [f.data_median_s / f.median_s for f in cheap]
    noisy = sum(f.noisy for f in row.values())
    batch_kb = cfg.batch * cfg.d_in * cfg.itemsize / 1024
    return "\n".join([
        f"- **The noise floor.** NumPy's `resident` and `copy` run the very same code (NumPy has no device), "
        f"yet their medians differ by {ratio('numpy/manual+copy', 'numpy/manual+resident')} in this run; "
        f"{noisy} of its {len(row)} rows are marked `~` (IQR above 10%). Only ratios well beyond that are findings.",
        f"- **At the lecture's sizes, on a CPU, the batch itself is cheap**: a {cfg.batch} x {cfg.d_in} "
        f"{cfg.dtype} batch is {batch_kb:.0f} KB, gathered in {min(f.data_median_s for f in cheap) * 1e6:.0f}-"
        f"{max(f.data_median_s for f in cheap) * 1e6:.0f} us ({min(share):.0%}-{max(share):.0%} of the step) by "
        "NumPy, PyTorch's `DataLoader` in the main process and ONNX Runtime's `update_inplace`. `disk` "
        "(memory-mapped `.npy`, pages in the page cache) reads the same pages from memory.",
        f"- **A loader worker process costs more than it saves here**: PyTorch `prefetch` "
        f"(`DataLoader(num_workers=1)`) spends {data_us('torch/module+prefetch')} per batch against "
        f"{data_us('torch/module+copy')} in the main process (`copy`), and its step takes "
        f"{ratio('torch/module+prefetch', 'torch/module+copy')} `copy`'s: each batch crosses processes through shared memory, and the worker competes with the step for "
        "the machine's cores. Workers pay off when producing a batch is expensive (decoding, augmentation) and "
        "cores are spare.",
        f"- **TensorFlow's per-call overhead**: `resident` gathers each batch with one `tf.function` call "
        f"({data_us('tensorflow/function+resident')} of Python-to-graph dispatch), while `tf.data`'s C++ pipeline "
        f"hands over a batch in {data_us('tensorflow/function+copy')} (`copy`).",
        f"- **Keras on TensorFlow**: every `PyDataset`, ours included, is wrapped in "
        f"`tf.data.Dataset.from_generator` (a Python call per batch), so `fit` on the `resident` feed takes "
        f"{ratio('keras-tensorflow/fit+resident', 'keras-tensorflow/fit+copy')} the time of `fit` on a `tf.data` "
        f"pipeline. Its data time is {data_us('keras-tensorflow/fit+copy')} because the TF train function pulls "
        f"the batch itself (the gather counts as compute; noted in the row). On jax, `fit`'s own iterator "
        f"prefetches, so the gap before each batch is {data_us('keras-jax/fit+resident')}.",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--harness"]:
        print(harness_table())
        return 0
    if argv == ["--feed"]:
        print(feed_notes())
        return 0
    print("Each finding is read from the committed file it names (`python docs/findings.py`).\n")
    print("\n".join(findings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
