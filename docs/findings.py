"""README's findings, each figure read from the committed results it names (run nothing).

python docs/findings.py            prints them as Markdown; README holds the output between generated
                                   markers, so that docs/update_readme.py rewrites them and
                                   tests/test_readme.py finds them stale.
python docs/findings.py --harness  every row's harness cost and its interval (docs/measurement.md)
python docs/findings.py --feed     what docs/feed's table says, for docs/feeding-the-data.md
python docs/findings.py --lecture  what each framework's kernels and overhead come to (docs/reading-the-table.md)
python docs/findings.py --floors   the yardstick's passes, its check, and the rows against the floors (docs/measurement.md)
python docs/findings.py --libraries  each library's rate and what sets it (docs/measurement.md)
python docs/findings.py --jax      JAX's rows in docs/cpu: their harness cost and whether they can be told apart (docs/tour.md)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the harness is beside docs/

from common.comparison import rows_of  # noqa: E402
from common.equivalence import FACTOR  # noqa: E402
from common.result import load_results  # noqa: E402
from common.timing import ASYNC_BLOCK  # noqa: E402
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
        bf16_finding(),
    ]


def bf16_finding() -> str:
    """bf16-mixed against float32, from the two results of docs/mixed-precision (docs/mixed_precision.py reads them)."""
    from mixed_precision import LECTURE, SWEEP, pairs  # beside this file

    def ratio(f32, bf16):
        return bf16.median_s / f32.median_s

    lecture = [(a, b) for a, b in pairs(LECTURE) if b is not None and b.median_s]
    sweep = [(a, b) for a, b in pairs(SWEEP) if b is not None and b.median_s]
    largest = max(a.flops_per_step for a, _ in sweep)
    big = {a.framework: ratio(a, b) for a, b in sweep if a.flops_per_step == largest}
    onednn = [name for name in big if not name.endswith("jax")]
    xla = [name for name in big if name.endswith("jax")]
    judged = [b for _, b in lecture]
    ok = [b for b in judged if b.status == "ok"]
    return (f"6. **bf16 pays only where its kernels are bf16, and only at size.** {len(ok)} of the {len(judged)} "
            f"bf16-mixed runs of `{LECTURE}` match their own bf16 reference within {FACTOR['bf16-mixed']:g}x its noise; at the "
            f"lecture's size they take {span([ratio(a, b) for a, b in lecture])}x their float32 step. At the sweep's "
            f"largest size (`{SWEEP}`) {' and '.join(f'`{n}`' for n in onednn)}, on oneDNN's AVX-512 bf16 kernels, "
            f"take {span([big[n] for n in onednn])}x, while {' and '.join(f'`{n}`' for n in xla)}, whose XLA:CPU "
            f"upcasts bf16 dots to float32, take {span([big[n] for n in xla])}x "
            "([mixed precision](docs/mixed-precision.md)).")


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


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3f} ms"


def row_name(f) -> str:
    return f"`{f.framework}/{f.variant}`"


def cpu_yardstick():
    """`CPU`'s rows, its measurement, and its one shape floor (the lecture's size: one shape)."""
    cpu, measurement, _, _ = rows(CPU)
    (shape, floor), = measurement["shape_floors"].items()
    return cpu, measurement, shape, floor


def lecture_notes() -> str:
    """docs/reading-the-table.md: the float32 table's kernels/overhead split, framework by framework."""
    cpu, measurement, shape, floor = cpu_yardstick()
    libraries = measurement["libraries"]
    peak = measurement["peak_library"]
    flop = cpu[0].floor_s * measurement["peak_gflops"] * 1e9
    lines = [
        f"What the numbers say at the lecture's size, from `{CPU}` (the float32 table in "
        f"[Fair measurement](measurement.md)): a step is {flop / 1e6:.0f} MFLOP, {ms(cpu[0].floor_s)} at the best "
        f"library's {libraries[peak]['peak_size']}^3 rate ({libraries[peak]['calls']}, "
        f"{measurement['peak_gflops']:.0f} GFLOP/s), and {ms(cpu[0].shape_floor_s)} with the fastest library's own "
        f"kernels for the step's shapes ({libraries[floor['library']]['calls']}: {ms(floor['matmul_s'])} of "
        f"matmuls, {ms(floor['elementwise_s'])} of elementwise work). The x kernels column says what each "
        "framework's library costs at these shapes, the x overhead column what the framework adds around it:", ""]
    fastest = min(cpu, key=lambda f: f.median_s)
    for impl in REGISTRY.values():
        own = [f for f in cpu if f.framework == impl.name]
        if not own:
            continue
        steps = ", ".join(f"`{f.variant}` {ms(f.median_s)} ({f.x_overhead:.2f}x)" for f in own)
        lines.append(f"- **{impl.name}**: its kernels are {libraries[impl.kernels]['calls']}, "
                     f"{own[0].x_kernels:.2f}x the fastest at these shapes; around them, {impl.around}: " + steps +
                     (f"; {row_name(fastest)} is the fastest row" if fastest in own else "") + ".")
    under = [f for f in cpu if f.x_overhead < 1]
    if under:
        lines += ["", f"{', '.join(row_name(f) for f in under)} take less than {'its' if len(under) == 1 else 'their'} "
                  "own kernels timed one op per call: the shape floor holds each op's call, so a framework that "
                  "runs the graph in one call can come in under it."]
    step = {(f.framework, f.variant): f for f in cpu}
    compiled, eager = step.get(("torch", "compile")), step.get(("torch", "tensors"))
    if compiled and eager and compiled.x_overhead > eager.x_overhead:
        lines += ["", "`torch/compile` adds more around its kernels than the hand-written `torch/tensors`: at this "
                  "size its wrappers cost more than its fusion saves, the lecture's point that a static graph pays "
                  "off only when there is work to optimise (see [Where the time goes](measurement.md))."]
    keras = [f for f in cpu if f.framework in ALIASES["keras"] and f.framework != "keras-jax"]
    if keras and min(f.x_overhead for f in keras) > max(f.x_kernels for f in keras):
        lines += ["", f"Keras on TensorFlow and on torch adds {span([f.x_overhead for f in keras], '{:.1f}')}x "
                  "around kernels that cost at most "
                  f"{max(f.x_kernels for f in keras):.2f}x the fastest: per-call overhead, not arithmetic, sets "
                  "its time."]
    return "\n".join(lines)


def floor_notes() -> str:
    """docs/measurement.md, under the float32 table: the yardstick's passes and check, and every row
    against both floors with its 95% interval."""
    cpu, measurement, shape, floor = cpu_yardstick()
    moved = {name: lib["passes"] for name, lib in measurement["libraries"].items() if len(lib.get("passes", [])) > 1}
    name, passes = max(moved.items(), key=lambda item: max(item[1]) / min(item[1]))
    check = load_results_json(PEAK_CHECK)
    under = [f for f in cpu if f.median_high_s < f.floor_s or f.median_high_s < f.shape_floor_s]
    closest = min(cpu, key=lambda f: f.x_shape_floor)
    slowest = max(cpu, key=lambda f: f.x_floor)
    outside = {row_name(f): f.profile.overhead_ms / f.profile.step_ms for f in cpu
               if f.framework in ALIASES["keras"] and f.profile is not None}
    lines = [
        f"The yardstick's {measurement['passes']} passes, minutes apart, differ by up to "
        f"{max(passes) / min(passes) - 1:.0%} for one library ({name}: "
        + " and ".join(f"{g:.0f}" for g in passes) + " GFLOP/s), which is why there are two and the better is kept. "
        f"`python benchmarks/peak_check.py {CPU}` straight after the run (each library's plain matmul at "
        f"{check['size']}^2, best of 7, its own code; `{PEAK_CHECK}`) found {check['best']['library']}'s "
        f"{check['best']['gflops']:.0f} GFLOP/s as its best: the recorded peak, "
        f"{check['recorded_peak_gflops']:.0f}, is {check['recorded_over_best']:.2f}x that.", "",
        (f"{len(under)} rows are under a floor beyond their 95% interval: {', '.join(row_name(f) for f in under)}."
         if under else "No row is under either floor beyond its 95% interval.") +
        f" The closest to them is {row_name(closest)}, at {closest.x_floor:.2f}x the compute floor and "
        f"{closest.x_shape_floor:.2f}x the shape floor (95% interval "
        f"{closest.median_low_s / closest.shape_floor_s:.2f}x-{closest.median_high_s / closest.shape_floor_s:.2f}x); "
        f"the slowest, {row_name(slowest)}, at "
        f"{slowest.x_floor:.1f}x the compute floor."]
    if outside:
        lines[-1] += (f" The Keras rows' profiles have {span([100 * v for v in outside.values()], '{:.0f}')}% of a "
                      "step outside their kernels.")
    return "\n".join(lines)


PEAK_CHECK = "docs/cpu/peak_check.json"
TF_SIDE_RUNS = ("docs/cpu/kernels-tensorflow-default.json", "docs/cpu/kernels-tensorflow-onednn-off.json")


def load_results_json(path: str) -> dict:
    import json

    return json.loads((ROOT / path).read_text())


def library_notes() -> str:
    """docs/measurement.md, under the kernel table: each library's rate, and the settings that pick its kernels."""
    cpu, measurement, shape, floor = cpu_yardstick()
    libraries = measurement["libraries"]
    check = {row["library"]: row["gflops"] for row in load_results_json(PEAK_CHECK)["rows"]}
    x_kernels = {f.framework: f.x_kernels for f in cpu}
    by_library = {impl.kernels: x_kernels[impl.name] for impl in REGISTRY.values() if impl.name in x_kernels}
    slowest = min(libraries, key=lambda name: libraries[name]["peak_gflops"])

    def rate(name: str) -> str:
        lib = libraries[name]
        return f"{lib['peak_gflops']:.0f} GFLOP/s at {lib['peak_size']}^3"

    def at_shapes(name: str) -> str:
        return (f"{by_library[name]:.2f}x the fastest kernels at the lecture's shapes"
                + (" (it sets the shape floor)" if name == floor["library"] else ""))

    notes = [f"On this run's CPU (`{CPU}`, `{measurement['command']}`):", ""]
    if "numpy" in libraries:
        blas = libraries["numpy"]["blas"][0]
        unset = next((g for name, g in check.items() if name.startswith("numpy,")), None)
        env = libraries["numpy"].get("env") or {}
        notes.append(
            f"- **NumPy**: {blas['internal_api']} {blas['version']} from the wheel, running its {blas['architecture']} "
            f"kernels: {rate('numpy')}; {at_shapes('numpy')}." + (
                " The run's environment sets " + ", ".join(f"`{k}={v}`" for k, v in env.items()) +
                ", and the yardstick's line under the float32 table above says what that does." if env else "") + (
                f" `benchmarks/peak_check.py` runs NumPy once more with `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` "
                f"unset in its own process, so that OpenBLAS picks its kernels by itself: {unset:.0f} GFLOP/s, "
                f"against {check['numpy']:.0f} with them as the environment has them (`{PEAK_CHECK}`). The "
                "comparison keeps the environment as it finds it." if unset is not None else ""))
    if "torch" in libraries:
        notes.append(f"- **torch**: {libraries['torch']['calls']}: {rate('torch')}"
                     + (", the slowest large matmul here" if slowest == "torch" else "") +
                     f"; {at_shapes('torch')}. torch documents no setting that picks another float32 GEMM on the "
                     "CPU, and nothing is tuned beyond the documentation.")
    if "onnxruntime" in libraries:
        notes.append(f"- **ONNX Runtime**: {libraries['onnxruntime']['calls']}: {rate('onnxruntime')}; "
                     f"{at_shapes('onnxruntime')}.")
    if "jax" in libraries:
        jax_rows = [f for f in cpu if f.framework == "jax" and f.profile is not None]
        tops = sorted({name for f in jax_rows for name, _ in f.profile.top[:2]})
        notes.append(f"- **JAX**: {libraries['jax']['calls']}, whose profiles name its dots "
                     f"{', '.join(f'`{t}`' for t in tops)}: {rate('jax')}"
                     + (", the peak" if measurement["peak_library"] == "jax" else "") +
                     f"; {at_shapes('jax')}; one jitted call costs "
                     f"{ms(libraries['jax']['shapes'][shape]['dispatch_s'])} to dispatch.")
    if "tensorflow" in libraries:
        default, off = (load_results_json(path) for path in TF_SIDE_RUNS)
        own = libraries["tensorflow"]["shapes"][shape]["matmul_s"]
        side = default["shapes"][shape]["matmul_s"]
        between = max(own, side) / min(own, side)
        settings = max(side, off["shapes"][shape]["matmul_s"]) / min(side, off["shapes"][shape]["matmul_s"])
        notes.append(
            f"- **TensorFlow**: {libraries['tensorflow']['calls']}. TensorFlow turns oneDNN on by default on CPUs "
            f"with AVX512_VNNI, AVX512_BF16 or AMX (release notes of 2.9): {rate('tensorflow')}, and "
            f"{check['tensorflow']:.0f} in the check straight after. `TF_ENABLE_ONEDNN_OPTS=0` gives {off['calls']} "
            f"instead: {off['peak_gflops']:.0f} against {default['peak_gflops']:.0f} GFLOP/s for the default timed "
            f"beside it ({', '.join(f'`{p}`' for p in TF_SIDE_RUNS)}). At the lecture's shapes the default's five "
            f"matmuls took {ms(own)} in the comparison's own child and {ms(side)} in the side run, "
            f"{between:.1f}x apart, " + (
                f"more than the two settings differ by ({settings:.1f}x), so the table sets no order between them "
                "there" if between >= settings else
                f"less than the two settings differ by ({settings:.1f}x)") +
            f"; TensorFlow's {ms(libraries['tensorflow']['shapes'][shape]['dispatch_s'])} call dispatch comes on top. "
            "TensorFlow's default is kept, as TensorFlow ships it.")
    return "\n".join(notes)


def jax_notes() -> str:
    """docs/tour.md: JAX's rows of `CPU`, timed in blocks: their harness cost, and their medians' intervals."""
    cpu = [f for f in cpu_yardstick()[0] if f.framework == "jax"]
    costed = [f for f in cpu if f.harness_cost is not None]
    costs = [f.harness_cost for f in costed]
    apart = [(a, b) for i, a in enumerate(cpu) for b in cpu[i + 1:]
             if a.median_high_s < b.median_low_s or b.median_high_s < a.median_low_s]
    return (f"JAX's steps are now timed in blocks of {ASYNC_BLOCK} (see [Fair measurement](measurement.md)), and in "
            f"`{CPU}` that cost is " + (" to ".join(f"{100 * v:+.1f}%" for v in sorted({min(costs), max(costs)}))) + " "
            "(95% intervals: " + ", ".join(f"`{f.variant}` {100 * f.harness_low:+.1f} to {100 * f.harness_high:+.1f}"
                                            for f in costed) +
            "; see [The harness's own cost](measurement.md)). There the medians are "
            + ", ".join(f"`{f.variant}` {ms(f.median_s)} ({ms(f.median_low_s)}-{ms(f.median_high_s)})" for f in cpu)
            + ("; their 95% intervals overlap, so none is told from another here." if not apart else
               "; the 95% intervals do not overlap for " + ", ".join(f"`{a.variant}` and `{b.variant}`" for a, b in apart)
               + "."))


SECTIONS = {"--harness": harness_table, "--feed": feed_notes, "--lecture": lecture_notes, "--floors": floor_notes,
            "--libraries": library_notes, "--jax": jax_notes}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(argv) == 1 and argv[0] in SECTIONS:
        print(SECTIONS[argv[0]]())
        return 0
    if argv:
        print(f"findings.py: unknown option {' '.join(argv)}; one of {', '.join(SECTIONS)} or none", file=sys.stderr)
        return 2
    print("Each finding is read from the committed file it names (`python docs/findings.py`).\n")
    print("\n".join(findings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
