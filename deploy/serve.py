"""Serve an .onnx model with ONNX Runtime from Python: load, check, run, time.

python -m deploy.serve results/models/predict_net.onnx --batch 64
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from common.config import CliParser, RunConfig
from common.problem import make_serving_batch
from common.timing import step_stats, time_calls


def load_checked(path: Path):
    """The model at `path` as an ONNX Runtime session, or ValueError saying why it cannot be."""
    import onnx
    import onnxruntime as ort

    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # protobuf DecodeError, ValidationError, ...: all mean "not a usable model"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a valid ONNX model (corrupt or truncated?): {first}") from None
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m deploy.serve", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an .onnx file with one input x[N, D_in]")
    parser.add_argument("--batch", type=int, default=64, help="rows in the served batch (default 64)")
    parser.add_argument("--repeats", type=int, default=100, help="timed calls (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the served inputs (default 0)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        parser.error(f"--batch and --repeats must be >= 1, got {args.batch} and {args.repeats}")
    try:
        session = load_checked(args.model)
    except ValueError as exc:
        parser.error(str(exc))
    spec = session.get_inputs()[0]
    dtype = "float64" if spec.type == "tensor(double)" else "float32"
    cfg = RunConfig(batch=args.batch, d_in=int(spec.shape[1]), dtype=dtype, seed=args.seed)
    x = make_serving_batch(cfg)
    y = session.run(None, {spec.name: x})[0]
    stats = step_stats(time_calls(lambda: session.run(None, {spec.name: x}), args.repeats + 1), 0)
    print(f"{args.model}: x{list(x.shape)} -> y{list(y.shape)} {dtype}, median {stats.median_s * 1e6:.1f} us "
          f"(IQR {stats.iqr_s * 1e6:.1f}), {args.batch / stats.median_s:,.0f} samples/s; y[0] = {np.round(y[0], 4)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
