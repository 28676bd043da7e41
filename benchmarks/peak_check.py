"""An independent check of the yardstick's peak: each library's plain large matmul, written here
anew (none of implementations.kernels), at another size (4096^2 by default), best of 7, one
process per library, set to the same threads; against the peak a results.json recorded.

Where the environment sets variables that steer OpenBLAS's kernels (OPENBLAS_CORETYPE,
OPENBLAS_L2_SIZE), NumPy is also timed with both unset in its own process, and the row says so.

python benchmarks/peak_check.py docs/cpu/results.json [--size 4096] [--out docs/cpu/peak_check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
OPENBLAS_KERNEL_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# Each prints the best seconds of 7 size^2 matmuls after one untimed; {n}, {dtype}, {threads} filled in.
SETUP = "import os, time, numpy as np\nrng = np.random.default_rng(1)\n" \
        "a, b = (rng.standard_normal(({n}, {n})).astype('{dtype}') for _ in range(2))\n"
TIMED = "\ncall(); best = 1e9\nfor _ in range(7):\n    t = time.perf_counter(); call(); best = min(best, " \
        "time.perf_counter() - t)\nprint(best)\n"
SNIPPETS = {
    "numpy": "call = lambda: a @ b",
    "torch": "import torch\ntorch.set_num_threads({threads})\nta, tb = torch.from_numpy(a), torch.from_numpy(b)\n"
             "call = lambda: torch.matmul(ta, tb)",
    "tensorflow": "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'\nimport tensorflow as tf\n"
                  "tf.config.threading.set_intra_op_parallelism_threads({threads})\n"
                  "tf.config.threading.set_inter_op_parallelism_threads({threads})\n"
                  "ta, tb = tf.constant(a), tf.constant(b)\ncall = lambda: tf.linalg.matmul(ta, tb)",
    "jax": "os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:{threads}])\n"
           "os.environ.setdefault('JAX_ENABLE_X64', 'true')\nimport jax, jax.numpy as jnp\n"
           "f = jax.jit(lambda x, y: x @ y)\nja, jb = jnp.asarray(a), jnp.asarray(b)\n"
           "call = lambda: f(ja, jb).block_until_ready()",
    "onnxruntime": "import onnxruntime as ort\nfrom onnx import helper, TensorProto\n"
                   "t = TensorProto.FLOAT if '{dtype}' == 'float32' else TensorProto.DOUBLE\n"
                   "g = helper.make_graph([helper.make_node('MatMul', ['a', 'b'], ['c'])], 'm', "
                   "[helper.make_tensor_value_info(k, t, [{n}, {n}]) for k in 'ab'], "
                   "[helper.make_tensor_value_info('c', t, [{n}, {n}])])\n"
                   "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]); m.ir_version = 8\n"
                   "o = ort.SessionOptions(); o.intra_op_num_threads = o.inter_op_num_threads = {threads}\n"
                   "s = ort.InferenceSession(m.SerializeToString(), o, providers=['CPUExecutionProvider'])\n"
                   "call = lambda: s.run(None, {{'a': a, 'b': b}})",
}
NEEDS = {"numpy": ("numpy",), "torch": ("torch",), "tensorflow": ("tensorflow",), "jax": ("jax",),
         "onnxruntime": ("onnxruntime", "onnx")}


def rate(library: str, n: int, dtype: str, threads: int, unset: tuple[str, ...] = ()) -> float | str:
    """GFLOP/s of the library's best n^2 matmul, or the child's last error line."""
    code = (SETUP + SNIPPETS[library] + TIMED).format(n=n, dtype=dtype, threads=threads)
    env = {k: v for k, v in os.environ.items() if k not in unset} | {name: str(threads) for name in THREAD_ENV}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return 2 * n**3 / float(proc.stdout.split()[-1]) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results.json whose measurement.peak_gflops is checked")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    try:
        doc = json.loads(args.results.read_text())
        m = doc["measurement"]
        recorded, dtype, threads = m["peak_gflops"], m["peak_dtype"], m["threads"]
    except (OSError, ValueError, KeyError) as exc:
        parser.error(f"{args.results}: not a results.json with a measured peak ({exc})")
    rows = []
    for library, needs in NEEDS.items():
        if any(find_spec(name) is None for name in needs):
            rows.append({"library": library, "error": "not installed"})
            continue
        rows.append({"library": library, "gflops": rate(library, args.size, dtype, threads)})
        if library == "numpy" and any(name in os.environ for name in OPENBLAS_KERNEL_ENV):
            unset = tuple(name for name in OPENBLAS_KERNEL_ENV if name in os.environ)
            rows.append({"library": f"numpy, {' and '.join(unset)} unset in its process",
                         "gflops": rate(library, args.size, dtype, threads, unset)})
    for row in rows:
        if isinstance(row.get("gflops"), str):
            row["error"] = row.pop("gflops")
    best = max((r for r in rows if "gflops" in r), key=lambda r: r["gflops"])
    print(f"{'library':50} GFLOP/s ({args.size}^2 {dtype}, {threads} threads, best of 7)")
    for row in rows:
        print(f"{row['library']:50} {row['gflops']:.0f}" if "gflops" in row else f"{row['library']:50} {row['error']}")
    ratio = recorded / best["gflops"]
    print(f"recorded peak {recorded:.0f} GFLOP/s ({m.get('peak_library', 'numpy')}, {args.results}) is {ratio:.2f}x "
          f"this check's best ({best['library']} {best['gflops']:.0f}): "
          + ("within 10%" if abs(ratio - 1) <= 0.10 else "NOT within 10%"))
    if args.out:
        args.out.write_text(json.dumps({"size": args.size, "dtype": dtype, "threads": threads, "rows": rows,
                                        "recorded_peak_gflops": recorded, "recorded_from": str(args.results),
                                        "best": best, "recorded_over_best": ratio}, indent=1))
    return 0 if abs(ratio - 1) <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
