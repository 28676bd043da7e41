"""Serve a jax.export model (serialized StableHLO) in a process that has no Python source of it.

python -m deploy.jax_serve MODEL.stablehlo INPUT.npy [--repeat K] [--threads T]

Imports only jax and NumPy: the model is data, as Caffe2's nets were. Prints one JSON line like
deploy/node/serve.js: {"dims", "data", "times_ms" (K timed calls after the first), "load_ms"
(reading and deserializing the file, and the first call, which compiles)}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("input", type=Path)
    parser.add_argument("--repeat", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="cores to pin XLA:CPU to (default: all)")
    args = parser.parse_args(argv)
    if args.threads and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])
    os.environ.setdefault("JAX_ENABLE_X64", "true")  # a float64 model needs it before jax loads
    import jax
    import numpy as np

    x = np.load(args.input)
    start = time.perf_counter()
    try:
        exported = jax.export.deserialize(bytearray(args.model.read_bytes()))
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        print(f"jax_serve: {args.model}: not a serialized jax.export model ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return 2
    run = jax.jit(exported.call)  # Exported.call re-wraps itself on every call; jitted once, it is cached
    y = np.asarray(run(x))  # the first call compiles: part of the load, as an ONNX Runtime session's is
    load_ms = (time.perf_counter() - start) * 1e3
    times_ms = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        run(x).block_until_ready()
        times_ms.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"dims": list(y.shape), "data": y.ravel().tolist(), "times_ms": times_ms, "load_ms": load_ms}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
