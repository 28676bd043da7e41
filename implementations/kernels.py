"""Each library's own kernels, timed alone: the yardstick that every run is read against.

For one library, in a process of its own (common.yardstick starts one per library, with the
run's threads), it times:
- its large matmul (size^3, the run's dtype): the machine's peak as that library reaches it;
- at each of the run's shapes, the step's five matmuls and then its elementwise work, with the
  library's own ops and nothing around them, best of k.

A compiled library (TensorFlow's tf.function, JAX's jit, an ONNX Runtime session) pays one
dispatch per call; the best of an empty call of the same kind is taken off each part, since that
dispatch belongs to a run's overhead, not to its kernels. It also says which kernel library
does the library's matmuls (BLAS, oneDNN, MLAS, XLA), and the environment variables that steer it.

python -m implementations.kernels --library torch --dtype float32 --threads 2 --shape 64x1000x100x10
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from pathlib import Path

from common.roofline import (key_of, numpy_square, numpy_step_parts, peak_rate, square_operands, step_buffers,
                             time_parts)

# The packages each timer imports (ONNX Runtime's builds its graphs with onnx)
REQUIRES = {"numpy": ("numpy",), "torch": ("torch",), "tensorflow": ("tensorflow",), "jax": ("jax",),
            "onnxruntime": ("onnxruntime", "onnx"), "executorch": ("executorch", "torch")}
LIBRARIES = tuple(REQUIRES)
# Variables that change which kernels a BLAS or a framework picks, recorded with every yardstick
KERNEL_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "MKL_DEBUG_CPU_TYPE",
              "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS",
              "XLA_FLAGS")


def blas_pools() -> list[dict]:
    """threadpoolctl's view of the BLAS and OpenMP libraries this process has loaded."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "architecture", "threading_layer", "num_threads")
    return [{k: pool[k] for k in keep if pool.get(k) is not None} | {"library": Path(pool["filepath"]).name}
            for pool in threadpool_info()]


# --- one timer per library: (square(size), step_parts(shape), empty call, what it calls) -------

def numpy_kernels(dtype: str, threads: int, lr: float):
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # stays in force: this process times nothing else
    blas = [pool for pool in blas_pools() if pool.get("user_api") == "blas"][:1]
    calls = "".join(f"{p['internal_api']} {p.get('version', '')}, {p.get('architecture', '?')} kernels (threadpoolctl)"
                    for p in blas) or "its BLAS (threadpoolctl saw none)"
    return (lambda size: numpy_square(size, dtype), lambda shape: numpy_step_parts(shape, dtype, lr), None,
            {"calls": f"NumPy's BLAS: {calls}"})


def torch_kernels(dtype: str, threads: int, lr: float):
    import torch

    from implementations import torch_support

    torch_support.set_threads(threads)
    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    blas = found.group(1) if found else "unknown"

    def square(size):
        a, b = (torch.from_numpy(v) for v in square_operands(size, dtype))
        out = torch.empty(size, size, dtype=a.dtype)
        return lambda: torch.mm(a, b, out=out)

    def step_parts(shape):
        t = {k: torch.from_numpy(v.copy()) for k, v in step_buffers(shape, dtype).items()}
        x, y, w1, w2, h, h_relu, y_pred = (t[k] for k in ("x", "y", "w1", "w2", "h", "h_relu", "y_pred"))
        diff, grad_y_pred, grad_h, grad_w1, grad_w2 = (t[k] for k in ("diff", "grad_y_pred", "grad_h", "grad_w1",
                                                                      "grad_w2"))
        step_w1, step_w2, negative = torch.empty_like(w1), torch.empty_like(w2), torch.empty(h.shape, dtype=torch.bool)

        def matmuls():  # transposed views go to BLAS as flags, no copies
            torch.mm(x, w1, out=h)
            torch.mm(h_relu, w2, out=y_pred)
            torch.mm(h_relu.t(), grad_y_pred, out=grad_w2)
            torch.mm(grad_y_pred, w2.t(), out=grad_h)
            torch.mm(x.t(), grad_h, out=grad_w1)

        def elementwise():
            torch.clamp_min(h, 0, out=h_relu)
            torch.sub(y_pred, y, out=diff)
            torch.dot(diff.view(-1), diff.view(-1))  # the loss
            torch.mul(diff, 2, out=grad_y_pred)
            torch.lt(h, 0, out=negative)
            grad_h.masked_fill_(negative, 0)
            torch.mul(grad_w1, lr, out=step_w1)
            w1.sub_(step_w1)
            torch.mul(grad_w2, lr, out=step_w2)
            w2.sub_(step_w2)

        return matmuls, elementwise

    return square, step_parts, None, {"calls": f"torch.mm: BLAS_INFO={blas} (torch.__config__)",
                                      "blas_info": blas, "mkldnn": torch.backends.mkldnn.is_available()}


def tensorflow_kernels(dtype: str, threads: int, lr: float):
    import tensorflow as tf

    from implementations import tf_support

    tf_support.set_threads(threads)
    try:  # TF's own report of whether its oneDNN (formerly MKL) kernels are on in this build and CPU
        from tensorflow.python.util import _pywrap_util_port
        onednn = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        onednn = None
    mm = tf.linalg.matmul

    def square(size):
        a, b = (tf.constant(v) for v in square_operands(size, dtype))
        call = tf.function(lambda: mm(a, b), autograph=False)
        return lambda: call()  # TF's CPU ops finish before the call returns

    def step_parts(shape):
        t = {k: tf.constant(v) for k, v in step_buffers(shape, dtype).items()}
        rate = tf.constant(lr, dtype=dtype)
        # the transposes as matmul's flags, as TF's graphs of the step carry them
        matmuls = tf.function(lambda: (mm(t["x"], t["w1"]), mm(t["h_relu"], t["w2"]),
                                       mm(t["h_relu"], t["grad_y_pred"], transpose_a=True),
                                       mm(t["grad_y_pred"], t["w2"], transpose_b=True),
                                       mm(t["x"], t["grad_h"], transpose_a=True)), autograph=False)

        @functools.partial(tf.function, autograph=False)
        def elementwise():
            diff = t["y_pred"] - t["y"]
            return (tf.nn.relu(t["h"]), tf.reduce_sum(diff * diff), 2 * diff,
                    tf.where(t["h"] < 0, tf.zeros_like(t["grad_h"]), t["grad_h"]),
                    t["w1"] - rate * t["grad_w1"], t["w2"] - rate * t["grad_w2"])

        return matmuls, elementwise

    empty_input = tf.constant(0.0)
    empty = tf.function(lambda: empty_input, autograph=False)
    calls = ("tf.linalg.matmul: " + ("oneDNN's matmul (IsMklEnabled)" if onednn else "Eigen's contraction"
                                     + (" (oneDNN off: IsMklEnabled is false)" if onednn is False else "")))
    return square, step_parts, empty, {"calls": calls, "onednn": onednn}


def jax_kernels(dtype: str, threads: int, lr: float):
    from implementations import jax_x64  # noqa: F401  (float64's switch, before jax is imported)
    import jax
    import jax.numpy as jnp

    from implementations import jax_support

    jax_support.bound_threads(threads)  # before XLA:CPU sizes its pools
    ready = jax.block_until_ready

    def square(size):
        a, b = (jnp.asarray(v) for v in square_operands(size, dtype))
        call = jax.jit(jnp.matmul)
        return lambda: ready(call(a, b))

    def step_parts(shape):
        t = {k: jnp.asarray(v) for k, v in step_buffers(shape, dtype).items()}
        rate = jnp.asarray(lr, dtype=dtype)
        mm_args = [t[k] for k in ("x", "w1", "h_relu", "w2", "grad_y_pred", "grad_h")]
        five = jax.jit(lambda x, w1, h_relu, w2, gy, gh: (x @ w1, h_relu @ w2, h_relu.T @ gy, gy @ w2.T, x.T @ gh))

        def elementwise_fn(h, y_pred, y, gh, g1, g2, w1, w2):
            diff = y_pred - y
            return (jnp.maximum(h, 0), jnp.sum(diff * diff), 2.0 * diff, jnp.where(h < 0, 0, gh),
                    w1 - rate * g1, w2 - rate * g2)

        ew_args = [t[k] for k in ("h", "y_pred", "y", "grad_h", "grad_w1", "grad_w2", "w1", "w2")]
        ew = jax.jit(elementwise_fn)
        return (lambda: ready(five(*mm_args))), (lambda: ready(ew(*ew_args)))

    scalar = jnp.zeros((), dtype=dtype)
    nothing = jax.jit(lambda s: s)
    import jaxlib

    return square, step_parts, lambda: ready(nothing(scalar)), {
        "calls": f"XLA:CPU's dot (jaxlib {jaxlib.__version__})", "xla_flags": os.environ.get("XLA_FLAGS", "")}


def onnxruntime_kernels(dtype: str, threads: int, lr: float):
    import numpy as np
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from implementations.onnx_support import model_of, session_options, value

    def session_of(nodes, inputs: dict, outputs: dict, initializers=()):
        graph = helper.make_graph(nodes, "kernels", [value(k, str(v.dtype), v.shape) for k, v in inputs.items()],
                                  [value(k, str(v.dtype), v.shape) for k, v in outputs.items()],
                                  initializer=list(initializers))
        session = ort.InferenceSession(model_of(graph).SerializeToString(), session_options(threads),
                                       providers=["CPUExecutionProvider"])
        binding = session.io_binding()  # bound once, outputs preallocated: a call is the graph alone
        for name, array in inputs.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
        for name, array in outputs.items():
            binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(np.empty_like(array)))
        return lambda: session.run_with_iobinding(binding)

    n = helper.make_node

    def square(size):
        a, b = square_operands(size, dtype)
        return session_of([n("MatMul", ["a", "b"], ["c"])], {"a": a, "b": b}, {"c": np.empty_like(a)})

    def step_parts(shape):
        b = step_buffers(shape, dtype)
        # the transposes as nodes, as the training graph writes them (ORT fuses them into its matmuls)
        matmuls = session_of(
            [n("MatMul", ["x", "w1"], ["h"]), n("MatMul", ["h_relu", "w2"], ["y_pred"]),
             n("Transpose", ["h_relu"], ["h_relu_t"]), n("MatMul", ["h_relu_t", "grad_y_pred"], ["grad_w2"]),
             n("Transpose", ["w2"], ["w2_t"]), n("MatMul", ["grad_y_pred", "w2_t"], ["grad_h"]),
             n("Transpose", ["x"], ["x_t"]), n("MatMul", ["x_t", "grad_h_in"], ["grad_w1"])],
            {"x": b["x"], "w1": b["w1"], "h_relu": b["h_relu"], "w2": b["w2"], "grad_y_pred": b["grad_y_pred"],
             "grad_h_in": b["grad_h"]},
            {k: b[k] for k in ("h", "y_pred", "grad_w2", "grad_h", "grad_w1")})
        constants = [numpy_helper.from_array(np.array(v, dtype=dtype), k) for k, v in
                     (("lr", lr), ("two", 2.0), ("zero", 0.0))]
        elementwise = session_of(
            [n("Relu", ["h"], ["h_relu"]), n("Sub", ["y_pred", "y"], ["diff"]), n("Mul", ["diff", "diff"], ["sq"]),
             n("ReduceSum", ["sq"], ["loss"], keepdims=0), n("Mul", ["two", "diff"], ["grad_y_pred"]),
             n("Less", ["h", "zero"], ["negative"]), n("Where", ["negative", "zero", "grad_h_in"], ["grad_h"]),
             n("Mul", ["lr", "grad_w1"], ["s1"]), n("Sub", ["w1", "s1"], ["w1_new"]),
             n("Mul", ["lr", "grad_w2"], ["s2"]), n("Sub", ["w2", "s2"], ["w2_new"])],
            {k: b[k] for k in ("h", "y_pred", "y", "grad_w1", "grad_w2", "w1", "w2")} | {"grad_h_in": b["grad_h"]},
            {"h_relu": b["h_relu"], "loss": np.zeros((), dtype), "grad_y_pred": b["grad_y_pred"],
             "grad_h": b["grad_h"], "w1_new": b["w1"], "w2_new": b["w2"]}, constants)
        return matmuls, elementwise

    scalar = np.zeros((), dtype)
    empty = session_of([n("Identity", ["s"], ["t"])], {"s": scalar}, {"t": scalar})
    return square, step_parts, empty, {"calls": "ONNX Runtime's MatMul: its own MLAS kernels"}


def executorch_kernels(dtype: str, threads: int, lr: float):
    import torch

    from implementations import executorch_support, torch_support

    torch_support.set_threads(threads)
    executorch_support.set_threads(threads)

    class Ops(torch.nn.Module):  # one program per part: the ops exported, run by ExecuTorch's kernels
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, *args):
            return self.fn(*args)

    def program(fn, *arrays):
        tensors = [torch.from_numpy(a.copy()) for a in arrays]
        run = executorch_support.method_of(Ops(fn), tuple(tensors))
        return lambda: run(tensors)

    def square(size):
        return program(torch.mm, *square_operands(size, dtype))

    def step_parts(shape):
        b = step_buffers(shape, dtype)
        matmuls = program(lambda x, w1, h_relu, w2, grad_y_pred, grad_h: (
            x.mm(w1), h_relu.mm(w2), h_relu.t().mm(grad_y_pred), grad_y_pred.mm(w2.t()), x.t().mm(grad_h)),
            *(b[k] for k in ("x", "w1", "h_relu", "w2", "grad_y_pred", "grad_h")))
        elementwise = program(lambda h, y_pred, y, grad_h, grad_w1, grad_w2, w1, w2: (
            h.clamp(min=0), (y_pred - y).pow(2).sum(), 2.0 * (y_pred - y), grad_h.masked_fill(h < 0, 0),
            w1 - lr * grad_w1, w2 - lr * grad_w2),
            *(b[k] for k in ("h", "y_pred", "y", "grad_h", "grad_w1", "grad_w2", "w1", "w2")))
        return matmuls, elementwise

    import numpy as np

    empty = program(lambda s: s + 0, np.zeros((1,), dtype))  # the smallest program: one op on one value
    return square, step_parts, empty, {"calls": "ExecuTorch's aten::mm kernel (its Python binding's kernel "
                                                "libraries, no delegate)"}


TIMERS = {"numpy": numpy_kernels, "torch": torch_kernels, "tensorflow": tensorflow_kernels, "jax": jax_kernels,
          "onnxruntime": onnxruntime_kernels, "executorch": executorch_kernels}


def measure(library: str, dtype: str, threads: int, shapes: list, peak_size: int, lr: float) -> dict:
    """What the yardstick records of one library (see the module docstring)."""
    square, step_parts, empty, info = TIMERS[library](dtype, threads, lr)
    # The step's shapes before the large matmul: taken just after it, the lecture's matmuls came out
    # at 0.27 ms against 0.18 ms measured alone (NumPy, 2026-11-29)
    steps = {key_of(shape, dtype): time_parts(*step_parts(shape), empty=empty) for shape in shapes}
    gflops = peak_rate(square(peak_size), peak_size)
    env = {name: os.environ[name] for name in KERNEL_ENV if name in os.environ}
    return {"library": library, "dtype": dtype, "threads": threads, "peak_gflops": gflops, "peak_size": peak_size,
            "shapes": steps, "env": env, "blas": blas_pools(), **info}


def parse_shape(text: str) -> tuple[int, int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"a shape is NxD_INxHxD_OUT of positive integers, got {text!r}")
    return shape


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m implementations.kernels", description=__doc__.splitlines()[0])
    parser.add_argument("--library", choices=LIBRARIES, required=True)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shape", type=parse_shape, action="append", default=[], metavar="NxD_INxHxD_OUT")
    parser.add_argument("--peak-size", type=int, default=2048, help="the large matmul's size (default 2048)")
    parser.add_argument("--lr", type=float, default=1e-6, help="the update's lr (default 1e-6)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures here (default: stdout)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.peak_size < 1:
        parser.error("--threads and --peak-size must be integers >= 1")
    figures = measure(args.library, args.dtype, args.threads, args.shape, args.peak_size, args.lr)
    text = json.dumps(figures, indent=1)
    if args.json is None:
        print(text)
    else:
        args.json.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
