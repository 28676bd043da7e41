"""The deploy matrix: each format a trained net is saved in, against each place that loads it.

python docs/deploy_matrix.py [DEPLOY_JSON]   prints it as Markdown (docs/deploy.md holds it between
generated markers). A cell is a measured row of the committed deploy.json (median latency at batch 1
and at N, and whether it matched its source), or the reason there is none: a reason the run wrote
(a skipped or failed note), else one of REASONS below, each a fact about this machine or the
runtimes' packages, checked where it says. Nothing is run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the harness is beside docs/

from deploy.bench import DEPLOY_TOLERANCE  # noqa: E402

DEPLOY = "docs/deploy/deploy.json"
PLACES = ("Python", "C++", "Node", "browser", "Android / iOS")
# format -> the files that are it (the deploy table's model column), in table order
FORMATS = {".onnx": (".onnx",), ".ort": (".ort",), ".pt2 (AOTInductor)": (".pt2",), ".pte (ExecuTorch)": (".pte",),
           ".tflite (LiteRT)": (".tflite",), "StableHLO (jax.export)": (".stablehlo",), ".keras": (),
           ".mlpackage (Core ML)": ()}
NO_PHONE = "not measured: no phone or emulator here"
ORT_C_API = ("no ONNX Runtime C/C++ headers here: the onnxruntime wheel and onnxruntime-node ship "
             "libonnxruntime.so without them, and Debian 12 has no onnxruntime package (apt-cache search onnxruntime finds none)")
REASONS = {
    (".onnx", "C++"): ORT_C_API,
    (".onnx", "Android / iOS"): f"{NO_PHONE}; ONNX Runtime's mobile packages load it as its Python rows do",
    (".ort", "C++"): ORT_C_API,
    (".ort", "Android / iOS"): f"{NO_PHONE}; the format ONNX Runtime's minimal mobile build loads",
    (".pt2 (AOTInductor)", "Node"): "no runtime: AOTInductor packages are loaded by libtorch (C++) or torch (Python)",
    (".pt2 (AOTInductor)", "browser"): "no runtime: AOTInductor compiles for the host CPU or a CUDA GPU, not WASM",
    (".pt2 (AOTInductor)", "Android / iOS"): "not a phone format: PyTorch's phone runtime loads .pte (ExecuTorch)",
    (".pte (ExecuTorch)", "C++"): ("the executorch wheel has the runtime's headers but no library to link: its "
                                   "runtime is compiled into the Python binding (_portable_lib), which needs "
                                   "libpython; a C++ build of it needs the ExecuTorch repository, not reachable here"),
    (".pte (ExecuTorch)", "Node"): "no ExecuTorch runtime for Node.js",
    (".pte (ExecuTorch)", "browser"): "no ExecuTorch runtime for the browser (WASM)",
    (".pte (ExecuTorch)", "Android / iOS"): f"{NO_PHONE}; the same runtime core as the Python rows, in an app",
    (".tflite (LiteRT)", "C++"): ("ai-edge-litert ships libLiteRt.so but no headers; LiteRT's C API is built "
                                  "from its repository, not reachable here"),
    (".tflite (LiteRT)", "Node"): "not measured: LiteRT's Node.js route is TensorFlow.js's tfjs-tflite, not in this suite",
    (".tflite (LiteRT)", "browser"): "not measured: LiteRT's web route is TensorFlow.js's tfjs-tflite, not in this suite",
    (".tflite (LiteRT)", "Android / iOS"): f"{NO_PHONE}; the same interpreter and XNNPACK as the Python rows, in an app",
    ("StableHLO (jax.export)", "C++"): ("needs XLA's PJRT C++ API, built from the XLA repository (not reachable "
                                        "here); jaxlib ships only XLA's FFI headers"),
    ("StableHLO (jax.export)", "Node"): "no StableHLO runtime for Node.js",
    ("StableHLO (jax.export)", "browser"): "no StableHLO runtime for the browser",
    ("StableHLO (jax.export)", "Android / iOS"): "no phone runtime loads StableHLO; LiteRT's converter takes it in",
    (".keras", "Python"): None,  # measured: the Keras source rows load the .keras archive
    (".keras", "C++"): "Keras runs in Python only; its serving formats are the .onnx and .tflite rows",
    (".keras", "Node"): "Keras runs in Python only (TensorFlow.js converts Keras models, not in this suite)",
    (".keras", "browser"): "Keras runs in Python only (TensorFlow.js converts Keras models, not in this suite)",
    (".keras", "Android / iOS"): "Keras runs in Python only; on phones its .tflite export runs (the LiteRT row)",
}
COREML = ("Core ML: coremltools converts on Linux, but its predict() needs macOS's Core ML framework; "
          "this suite runs on Linux, so there is no row")
for _place in PLACES:
    REASONS[(".mlpackage (Core ML)", _place)] = COREML if _place in ("Python", "Android / iOS") else \
        "Core ML runs on Apple's systems only"


def place_of(runtime: str) -> str | None:
    """Where a deploy row's runtime runs (None: a source framework's own forward pass)."""
    if runtime.startswith("C++"):
        return "C++"
    if runtime == "onnxruntime-node":
        return "Node"
    if runtime.startswith("onnxruntime-web"):
        return "browser"
    return "Python"


def format_of(row: dict) -> str | None:
    if row["runtime"].startswith("keras") and row["max_rel_err"] is None and row.get("load_s") is not None:
        return ".keras"  # the Keras source's load is its .keras archive's (deploy/export.py native_keras)
    if row["max_rel_err"] is None:
        return None
    suffix = Path(row["model"]).suffix
    return next((name for name, suffixes in FORMATS.items() if suffix in suffixes), None)


def cells(doc: dict) -> dict[tuple[str, str], list[str]]:
    """{(format, place): ["runtime: b1 / bN us, match", ...]} from the deploy rows; where one runtime
    served several files of a format (three exporters write .onnx), the range over them."""
    by_runtime: dict[tuple[str, str, str], list[dict]] = {}
    for row in doc["rows"]:
        fmt = format_of(row)
        if fmt is not None:
            by_runtime.setdefault((fmt, place_of(row["runtime"]), row["runtime"]), []).append(row)
    found: dict[tuple[str, str], list[str]] = {}
    for (fmt, place, runtime), rows in by_runtime.items():
        times = " / ".join(_span([r["median_s"] for r in rows if r["batch"] == b])
                           for b in sorted({r["batch"] for r in rows}))
        files = len({r["model"] for r in rows})
        errors = [r["max_rel_err"] for r in rows if r["max_rel_err"] is not None]
        verdict = "" if not errors else (", match" if max(errors) <= doc["tolerance"] else ", NO match")
        label = runtime.removeprefix("onnxruntime-web ").removeprefix("C++ ")
        found.setdefault((fmt, place), []).append(f"{label}: {times} us" + (f" ({files} files)" if files > 1 else "")
                                                  + verdict)
    return found


def _span(seconds: list[float]) -> str:
    low, high = f"{min(seconds) * 1e6:,.0f}", f"{max(seconds) * 1e6:,.0f}"
    return low if low == high else f"{low}-{high}"


def notes_for(doc: dict, fmt: str, place: str) -> str | None:
    """A skipped or failed note of the run that concerns this cell's runtime."""
    keys = {("Node", ".onnx"): "onnxruntime-node", ("Node", ".ort"): "onnxruntime-node",
            ("browser", ".onnx"): "onnxruntime-web", ("browser", ".ort"): "onnxruntime-web"}
    key = keys.get((place, fmt))
    return next((n for n in doc.get("skipped", []) + doc.get("failed", []) if key and n.startswith(key)), None)


def matrix(doc: dict) -> str:
    found = cells(doc)
    lines = ["| format | " + " | ".join(PLACES) + " |", "|---" * (len(PLACES) + 1) + "|"]
    for fmt in FORMATS:
        row = []
        for place in PLACES:
            measured = found.get((fmt, place))
            text = "<br>".join(measured) if measured else (notes_for(doc, fmt, place) or REASONS.get((fmt, place))
                                                            or "no row in this deploy.json")
            row.append(text)
        lines.append(f"| {fmt} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else ROOT / DEPLOY
    doc = json.loads(path.read_text())
    dtype = doc["config"]["dtype"]
    doc["tolerance"] = DEPLOY_TOLERANCE[dtype]
    machine = doc.get("machine") or {}
    on = f" on {machine['cpu']} ({machine['cpu_model']})" if machine.get("cpu_model") else ""
    print(f"Median latency in us at batch 1 / batch {doc['config']['batch']} ({dtype}, {doc['config']['threads']} "
          f"threads{on}), from `{argv[0] if argv else DEPLOY}`; \"match\": within {doc['tolerance']:g} of the "
          f"source framework's own output.\n")
    print(matrix(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
