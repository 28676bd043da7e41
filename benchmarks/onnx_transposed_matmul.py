"""Does the train_net's layout slow ONNX Runtime down? The step's largest transposed matmul four ways.

    python benchmarks/onnx_transposed_matmul.py --threads 2

grad_w1 = x^T @ grad_h is, with x @ w1, one of the two largest matmuls of a step. train_net
writes it as Transpose + MatMul, which ONNX Runtime's optimiser fuses into FusedMatMul(transA).
This times, at the sweep's largest size (N=1024, D_in=8192, H=1024) unless told otherwise, each
as its own one-node model: the plain forward MatMul (no transpose, same FLOPs), Transpose +
MatMul as train_net has it, Gemm(transA=1), and MatMul on a transpose made ahead; NumPy's
x.T @ grad_h beside them. Medians of rotating repeats.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.timing import median  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--d-in", type=int, default=8192)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if min(args.batch, args.d_in, args.hidden, args.threads, args.repeats) < 1:
        parser.exit(2, f"{parser.prog}: error: every size, --threads and --repeats must be >= 1\n")

    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from threadpoolctl import threadpool_limits

    n, d, h = args.batch, args.d_in, args.hidden

    def model(nodes, inputs, output_shape):
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
                                               for name, shape in inputs],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, output_shape)])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m.SerializeToString()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w1 = rng.standard_normal((d, h), dtype=np.float32)
    grad_h = rng.standard_normal((n, h), dtype=np.float32)
    node = helper.make_node
    cases = {
        "MatMul x @ w1 (forward, no transpose)": (
            model([node("MatMul", ["a", "b"], ["c"])], [("a", [n, d]), ("b", [d, h])], [n, h]), {"a": x, "b": w1}),
        "Transpose + MatMul, as train_net (fused: FusedMatMul transA)": (
            model([node("Transpose", ["a"], ["a_t"]), node("MatMul", ["a_t", "b"], ["c"])],
                  [("a", [n, d]), ("b", [n, h])], [d, h]), {"a": x, "b": grad_h}),
        "Gemm(transA=1)": (
            model([node("Gemm", ["a", "b"], ["c"], transA=1)], [("a", [n, d]), ("b", [n, h])], [d, h]),
            {"a": x, "b": grad_h}),
        "MatMul on x^T made ahead": (
            model([node("MatMul", ["a", "b"], ["c"])], [("a", [d, n]), ("b", [n, h])], [d, h]),
            {"a": np.ascontiguousarray(x.T), "b": grad_h}),
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = args.threads
    sessions = {name: ort.InferenceSession(m, options, providers=["CPUExecutionProvider"])
                for name, (m, _) in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in [*cases, "NumPy x.T @ grad_h"]}
    names = list(times)
    with threadpool_limits(limits=args.threads):
        for name in cases:
            sessions[name].run(None, cases[name][1])
        for r in range(args.repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:
                start = time.perf_counter()
                if name in cases:
                    sessions[name].run(None, cases[name][1])
                else:
                    x.T @ grad_h
                times[name].append(time.perf_counter() - start)
    print(f"N={n} D_in={d} H={h}, {args.threads} threads, onnxruntime {ort.__version__}, {args.repeats} repeats:")
    for name, values in times.items():
        print(f"  {median(values) * 1e3:8.1f} ms (min {min(values) * 1e3:.1f})  {name}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
