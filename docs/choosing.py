"""The decision table for engineers: one row per need, its pick, and the committed figure behind it.

python docs/choosing.py   prints the table as Markdown (docs/choosing.md holds it between generated
markers); every figure is read from the committed result the row names, nothing is run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the harness is beside docs/

from common.comparison import rows_of  # noqa: E402
from common.result import load_results  # noqa: E402
from common.sweep import size_label  # noqa: E402
from deploy.bench import DEPLOY_TOLERANCE  # noqa: E402

CPU = "docs/cpu/results.json"
SWEEP = "docs/sweep/results.json"
DEPLOY = "docs/deploy/deploy.json"
WORKERS = ("docs/workers/results.json", "docs/workers-large/results.json")
# The variants whose backward pass is written by hand (docs/side-by-side.md): the lecture's NumPy and
# tensors rungs, JAX's manual step, ONNX's hand-built training graphs. Not what one prototypes with.
HAND_WRITTEN_GRADIENTS = {"numpy/manual", "torch/tensors", "jax/manual", "onnx/step", "onnx/loop"}


def derives_gradients(f) -> bool:
    return f"{f.framework}/{f.variant}" not in HAND_WRITTEN_GRADIENTS


def figures(path: str):
    doc, results = load_results(ROOT / path)
    return [f for f in rows_of(results, doc.get("measurement") or {}) if f.status == "ok"]


def name(f) -> str:
    return f"`{f.framework}/{f.label}`"


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3f} ms"


def interval(f) -> str:
    return f"95% CI {ms(f.median_low_s)}-{ms(f.median_high_s)}" if f.median_low_s is not None else "no interval"


def runner_up(rows, best) -> str:
    rest = [f for f in rows if f is not best]
    if not rest:
        return ""
    second = min(rest, key=lambda f: f.median_s)
    told = "cannot be told apart" if second.same_as_fastest else "is slower beyond its interval"
    return f"; next {name(second)} at {second.x_fastest:.2f}x, which {told}"


def lecture_size(cpu, derived) -> list[str]:
    best = min(cpu, key=lambda f: f.median_s)
    best_derived = min(derived, key=lambda f: f.median_s)
    return [f"the lecture's size ({size_label(best)}), fastest step",
            f"{name(best)}, {ms(best.median_s)} a step ({interval(best)}){runner_up(cpu, best)}. With gradients "
            f"derived for you: {name(best_derived)}, {best_derived.x_fastest:.2f}x",
            f"`{CPU}`, `median ms`, `x fastest`"]


def prototyping(derived) -> list[str]:
    quickest = min(derived, key=lambda f: f.to_first_step_s)
    slowest = max(derived, key=lambda f: f.to_first_step_s)
    return ["prototyping: an edit, a run, an answer",
            f"{name(quickest)}: {quickest.to_first_step_s:.1f} s from process start to its first step, against "
            f"{slowest.to_first_step_s:.1f} s for {name(slowest)}; eager, so every line runs as written",
            f"`{CPU}`, `to 1st step s`"]


def large_sizes(sweep) -> list[str]:
    largest = max(f.config.flops_per_step() for f in sweep)
    top = [f for f in sweep if f.config.flops_per_step() == largest]
    best = min(top, key=lambda f: f.median_s)
    return [f"large sizes ({size_label(best)}, the sweep's largest)",
            f"{name(best)}, {ms(best.median_s)} a step, {best.gflops:.0f} GFLOP/s, {best.x_floor:.2f}x the compute "
            f"floor{runner_up(top, best)}: the kernel library sets the pace there",
            f"`{SWEEP}`, `x floor`, `x kernels`"]


def deploy_rows():
    doc = json.loads((ROOT / DEPLOY).read_text())
    return doc["rows"], doc["config"]["batch"]


def fastest(rows, batch, where=lambda r: True):
    candidates = [r for r in rows if r["batch"] == batch and where(r)]
    return min(candidates, key=lambda r: r["median_s"]) if candidates else None


def us(row) -> str:
    return f"{1e6 * row['median_s']:.1f} us"


def serving(rows, batch) -> list[str]:
    one, many = fastest(rows, 1), fastest(rows, batch)
    served = fastest(rows, batch, lambda r: r["max_rel_err"] is not None)
    return ["serving latency, from Python",
            f"batch 1: {one['runtime']} ({one['model']}), {us(one)}; batch {batch}: {many['runtime']} "
            f"({many['model']}), {us(many)}" + (f"; of exported files, {served['runtime']} on {served['model']}, "
                                                f"{us(served)}" if served is not many else ""),
            f"`{DEPLOY}`, `median us`"]


def outside_python(rows, batch) -> list[str]:
    cpp = [r for r in rows if r["runtime"].startswith("C++")]
    node = [r for r in rows if r["runtime"] == "onnxruntime-node"]
    web = [r for r in rows if r["runtime"].startswith("onnxruntime-web")]
    cells = []
    for label, found in (("C++", cpp), ("Node", node), ("the browser", web)):
        if found:
            one, many = fastest(found, 1), fastest(found, batch)
            if (one["runtime"], one["model"]) == (many["runtime"], many["model"]):
                cells.append(f"{label}: {one['runtime']} on {one['model']}, {us(one)} at batch 1 and {us(many)} at "
                             f"{batch}")
            else:  # the fastest at one size is another runtime or file than at the other
                cells.append(f"{label}: {us(one)} at batch 1 ({one['runtime']} on {one['model']}) and {us(many)} at "
                             f"{batch} ({many['runtime']} on {many['model']})")
    within = all(r["max_rel_err"] <= DEPLOY_TOLERANCE[r["dtype"]] for r in cpp + node + web)
    return ["the browser, Node, C++ with no Python in the process, a phone",
            "; ".join(cells) + ("; each within its bound" if within else "; NOT all within their bound: see the table")
            + ". For phones, the .pte (ExecuTorch) and .tflite (LiteRT) "
                               "files, served here by those runtimes' Python bindings: "
                               "[the deploy matrix](deploy.md#the-deploy-matrix)",
            f"`{DEPLOY}`, rows `C++`, `onnxruntime-node` and `onnxruntime-web`"]


def several_workers() -> list[str]:
    cells = []
    for path in WORKERS:
        rows = figures(path)
        scaled = [f for f in rows if f.world_size > 1 and f.x_one_worker is not None]
        if not scaled:
            continue
        best = min(scaled, key=lambda f: f.x_one_worker)
        cells.append(f"{size_label(best)}: the best of {len(scaled)} engines, {name(best)}, "
                     f"takes {best.x_one_worker:.2f}x one worker's step, collectives {best.comm_share:.0%} of it")
    return ["several processes or machines",
            "on one machine's shared cores, none pays: " + "; ".join(cells) +
            ". Data parallelism pays only with more cores or devices per worker (the ring model in "
            "[data-parallel](data-parallel.md))",
            " and ".join(f"`{p}`" for p in WORKERS) + ", `x 1 worker`, `comm %`"]


def table() -> str:
    cpu, sweep = figures(CPU), figures(SWEEP)
    rows, batch = deploy_rows()
    derived = [f for f in cpu if derives_gradients(f)]
    body = [lecture_size(cpu, derived), prototyping(derived), large_sizes(sweep), serving(rows, batch),
            outside_python(rows, batch), several_workers()]
    lines = ["| need | pick, as measured | from |", "|---|---|---|"]
    lines += [f"| {need} | {pick} | {source} |" for need, pick, source in body]
    return "\n".join(lines)


def main() -> int:
    print("Each row is read from the committed result it names (`python docs/choosing.py`).\n")
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
