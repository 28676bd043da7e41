"""One exported model: its ONNX Runtime output against its source framework, and both latencies.

python -m deploy.bench --source torch --weights w.npz --model-dir models/ --json rows.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.config import CliParser, ConfigError, add_config_args, config_from_args
from common.problem import make_serving_batch
from common.timing import median, step_stats, time_calls
from deploy import export
from implementations import REGISTRY

# The registry's exporters whose export and native functions (deploy/export.py) this module runs.
EXPORTERS = {exporter.source: exporter for impl in REGISTRY.values() for exporter in impl.exporters
             if exporter.export is not None}
# ONNX Runtime vs the exporting framework on the same fresh input, max |a - b| / max |b|.
# Measured: docs/deploy.md's deploy table (from docs/deploy/deploy.json), float32 <= 1.0e-6, and float64
# <= 1e-15; the bounds leave a margin of 10x or more.
DEPLOY_TOLERANCE = {"float32": 1e-5, "float64": 1e-13}
LOADS = 5  # timed model loads per runtime
# A deploy child that exits with this has no rows to give, for the reason on its last stderr line
# (a format this dtype has no kernels for): a skipped row, not a failed one.
SKIPPED_EXIT = 3


def skip(reason: str) -> None:
    """End a deploy child with no rows, saying why (SKIPPED_EXIT)."""
    print(reason, file=sys.stderr)
    sys.exit(SKIPPED_EXIT)


def external_data_files(path: Path) -> list[str]:
    """The files beside an .onnx that hold its tensors (torch.onnx.export keeps the weights in a
    .data file beside a few-KB graph)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sorted({entry.value for tensor in model.graph.initializer
                   if tensor.data_location == onnx.TensorProto.EXTERNAL
                   for entry in tensor.external_data if entry.key == "location"})


def onnx_size_bytes(path: Path) -> int:
    """The model's size on disk: the .onnx and the external data files its tensors point to (an .ort
    file holds its tensors)."""
    if path.suffix != ".onnx":
        return path.stat().st_size
    return path.stat().st_size + sum((path.parent / name).stat().st_size for name in external_data_files(path))


def load_time_s(load) -> float:
    """The median wall time of LOADS calls of load() (after one untimed: imports and caches)."""
    load()
    return median(time_calls(load, LOADS))


@dataclass
class DeployRow:
    """One (model, runtime, batch) of the inference table."""

    model: str  # the .onnx file's name
    source: str  # the exporter
    runtime: str
    batch: int
    dtype: str
    median_s: float
    iqr_s: float
    max_rel_err: float | None  # against the source's own forward pass; None: the source itself
    # the runtime's model load, from the file to ready to run (median of LOADS), and that file's size;
    # a source framework loads its own saved format (its native function in deploy/export.py)
    load_s: float | None = None
    model_bytes: int | None = None
    # a runtime outside Python: every file its serving process mapped besides the model (the
    # executable and its shared libraries), from its /proc/self/maps
    runtime_bytes: int | None = None


def max_rel_diff(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), np.finfo(want.dtype).tiny))


def timed_row(model: Path, source: str, runtime: str, call, xb: np.ndarray, want: np.ndarray | None, warmup: int,
              repeats: int, load_s: float | None = None, model_bytes: int | None = None) -> DeployRow:
    """One row: call(xb) checked against the source's `want` (None: this is the source) and timed,
    1 + warmup + repeats calls of which the first 1 + warmup are dropped."""
    err = None if want is None else max_rel_diff(np.asarray(call(xb)), want)
    stats = step_stats(time_calls(lambda: call(xb), 1 + warmup + repeats), warmup)
    return DeployRow(model=model.name, source=source, runtime=runtime, batch=len(xb), dtype=str(xb.dtype),
                     median_s=stats.median_s, iqr_s=stats.iqr_s, max_rel_err=err, load_s=load_s,
                     model_bytes=model_bytes)


def bench(source: str, w1: np.ndarray, w2: np.ndarray, x: np.ndarray, model_dir: Path, threads: int,
          repeats: int, warmup: int) -> list[DeployRow]:
    """Rows (model, runtime, batch) for batch 1 and batch len(x)."""
    import onnxruntime as ort

    from implementations.onnx_support import session_options

    exporter = EXPORTERS[source]
    path, forward = getattr(export, exporter.export)(w1, w2, model_dir, threads)
    open_session = lambda: ort.InferenceSession(str(path), session_options(threads),  # noqa: E731
                                                providers=["CPUExecutionProvider"])
    session = open_session()
    native_path, native_load = getattr(export, exporter.native)(w1, w2, model_dir)
    loaded = {"onnxruntime": (load_time_s(open_session), onnx_size_bytes(path)),
              exporter.runtime: (load_time_s(native_load), native_path.stat().st_size)}
    name = session.get_inputs()[0].name
    rows, source_out = [], {}
    for batch in dict.fromkeys((1, len(x))):
        xb = np.ascontiguousarray(x[:batch])
        source_out[str(batch)] = forward(xb)
        err = max_rel_diff(session.run(None, {name: xb})[0], source_out[str(batch)])
        runtimes = {"onnxruntime": lambda: session.run(None, {name: xb}), exporter.runtime: lambda: forward(xb)}
        for runtime, call in runtimes.items():
            stats = step_stats(time_calls(call, 1 + warmup + repeats), warmup)
            rows.append(DeployRow(model=path.name, source=source, runtime=runtime, batch=batch, dtype=str(x.dtype),
                                  median_s=stats.median_s, iqr_s=stats.iqr_s,
                                  max_rel_err=err if runtime == "onnxruntime" else None,
                                  load_s=loaded[runtime][0], model_bytes=loaded[runtime][1]))
    # Runtimes outside Python (the browser) are checked against the source without importing it.
    np.savez(source_outputs_path(path), **source_out)
    return rows


def source_outputs_path(model: Path) -> Path:
    """Where bench leaves the source framework's own y_pred on the serving batch, per batch size."""
    return model.with_name(f"{model.stem}.source_out.npz")


def parse_child(prog: str, description: str, argv: list[str] | None, sources: list[str] | None = None):
    """The flags every deploy child takes: the run's config, the trained weights, where to write.
    Returns (args, cfg, w1, w2), the weights in cfg's dtype."""
    parser = CliParser(prog=prog, description=description)
    add_config_args(parser)
    if sources is not None:
        parser.add_argument("--source", choices=sources, required=True)
    parser.add_argument("--device", choices=["cpu"], default="cpu", help="the deploy table is measured on the CPU")
    parser.add_argument("--weights", type=Path, required=True, help="trained w1, w2 (.npz from --save-weights)")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per row (default 200)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
    with np.load(args.weights) as weights:
        w1, w2 = (np.ascontiguousarray(weights[k].astype(cfg.dtype)) for k in ("w1", "w2"))
    args.model_dir.mkdir(parents=True, exist_ok=True)
    return args, cfg, w1, w2


def main(argv: list[str] | None = None) -> None:
    args, cfg, w1, w2 = parse_child("python -m deploy.bench", __doc__.splitlines()[0], argv, sorted(EXPORTERS))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=cfg.threads):
        rows = bench(args.source, w1, w2, make_serving_batch(cfg), args.model_dir, cfg.threads, args.repeats,
                     cfg.warmup)
    args.json.write_text(json.dumps([asdict(row) for row in rows]))


if __name__ == "__main__":
    sys.exit(main())
