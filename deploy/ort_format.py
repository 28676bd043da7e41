"""ONNX Runtime Mobile's file: predict_net converted to the .ort format, served by ONNX Runtime.

python -m deploy.ort_format --source ort_format --weights w.npz --model-dir models/ --json rows.json

An .ort file is a flatbuffer that a minimal ONNX Runtime build (the phones' onnxruntime-mobile)
loads without the protobuf parser or the graph optimizer: the conversion runs the optimizations
first ("Fixed" style, for a CPU target). This child converts with the installed onnxruntime's own
tool (onnxruntime.tools.convert_onnx_models_to_ort) and serves the file from Python; compare.py
--deploy then serves the same file with onnxruntime-node and in the browser page.
"""

from __future__ import annotations

import json
import sys
import tempfile
from contextlib import redirect_stdout
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.problem import make_serving_batch
from deploy.bench import DeployRow, load_time_s, parse_child, source_outputs_path, timed_row
from deploy.export import numpy_forward

SOURCE = "ort_format"
MODEL = "predict_net.ort"


def convert(w1: np.ndarray, w2: np.ndarray, model_dir: Path) -> Path:
    """predict_net built as deploy/export.py builds it, converted to model_dir/predict_net.ort."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    from implementations.onnx_runtime import predict_net
    from implementations.onnx_support import save_checked

    with tempfile.TemporaryDirectory() as tmp:
        save_checked(predict_net(w1, w2), Path(tmp) / "predict_net.onnx")
        # the tool prints its progress on stdout, which is this child's to keep quiet
        with redirect_stdout(sys.stderr):
            convert_onnx_models_to_ort(Path(tmp), output_dir=Path(tmp) / "ort",
                                       optimization_styles=[OptimizationStyle.Fixed])
        converted = Path(tmp) / "ort" / MODEL
        if not converted.is_file():
            raise RuntimeError(f"convert_onnx_models_to_ort wrote no {MODEL}")
        path = model_dir / MODEL
        path.write_bytes(converted.read_bytes())
    return path


def rows(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, model_dir: Path, threads: int, repeats: int,
         warmup: int) -> list[DeployRow]:
    import onnxruntime as ort

    from implementations.onnx_support import session_options

    path = convert(w1, w2, model_dir)
    open_session = lambda: ort.InferenceSession(str(path), session_options(threads),  # noqa: E731
                                                providers=["CPUExecutionProvider"])
    load_s, size = load_time_s(open_session), path.stat().st_size
    session = open_session()
    name = session.get_inputs()[0].name
    forward = numpy_forward(w1, w2)
    found, source_out = [], {}
    for batch in dict.fromkeys((1, len(x))):
        xb = np.ascontiguousarray(x[:batch])
        source_out[str(batch)] = forward(xb)
        # its source's own rows are predict_net.onnx's (NumPy's forward pass), not repeated here
        found.append(timed_row(path, SOURCE, "onnxruntime", lambda v: session.run(None, {name: v})[0], xb,
                               source_out[str(batch)], warmup, repeats, load_s, size))
    np.savez(source_outputs_path(path), **source_out)  # for the browser page's rows
    return found


def main(argv: list[str] | None = None) -> None:
    args, cfg, w1, w2 = parse_child("python -m deploy.ort_format", __doc__.splitlines()[0], argv, [SOURCE])
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=cfg.threads):
        found = rows(w1, w2, make_serving_batch(cfg), args.model_dir, cfg.threads, args.repeats, cfg.warmup)
    args.json.write_text(json.dumps([asdict(row) for row in found]))


if __name__ == "__main__":
    sys.exit(main())
