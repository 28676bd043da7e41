"""How much rounding each library's float32 matmuls carry at a step's shapes: each of the step's
five products against the same product in float64, as max |C - C64| / (|A| |B|), for NumPy, torch
and JAX (those installed), on the buffers of one real step (common.roofline.step_buffers).

A product's error grows with the length of its inner sum and with how the kernel orders it; the
ratio to NumPy's says whether a library's kernels sum in an order that NumPy's (and the noise
ensemble of common/noise.py, which reorders NumPy's) does not.

python benchmarks/dot_error.py --shape 128x2048x256x32 [--out docs/sweep/dot_error.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.roofline import step_buffers  # noqa: E402
from implementations.kernels import parse_shape  # noqa: E402


def products(b: dict) -> dict:
    """The step's five products as (A, B), named as the step writes them."""
    return {"x @ w1": (b["x"], b["w1"]), "h_relu @ w2": (b["h_relu"], b["w2"]),
            "h_relu.T @ grad_y_pred": (b["h_relu"].T, b["grad_y_pred"]),
            "grad_y_pred @ w2.T": (b["grad_y_pred"], b["w2"].T),
            "x.T @ grad_h": (b["x"].T, b["grad_h"])}


def multipliers() -> dict:
    """Each installed library's float32 matmul, as a function of two NumPy arrays."""
    found = {"numpy": lambda a, c: a @ c}
    if find_spec("torch"):
        import torch

        found["torch"] = lambda a, c: (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(
            np.ascontiguousarray(c))).numpy()
    if find_spec("jax"):
        os.environ.setdefault("JAX_ENABLE_X64", "true")
        import jax
        import jax.numpy as jnp

        matmul = jax.jit(lambda a, c: a @ c)
        found["jax"] = lambda a, c: np.asarray(matmul(jnp.asarray(a), jnp.asarray(c)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=parse_shape, default=(64, 1000, 100, 10), metavar="NxD_INxHxD_OUT")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    errors: dict[str, dict[str, float]] = {}
    for library, matmul in multipliers().items():
        errors[library] = {}
        for name, (a, c) in products(step_buffers(args.shape, "float32")).items():
            exact = a.astype(np.float64) @ c.astype(np.float64)
            scale = np.abs(a).astype(np.float64) @ np.abs(c).astype(np.float64)
            errors[library][name] = float(np.max(np.abs(matmul(a, c) - exact) / scale))
    shape = "x".join(map(str, args.shape))
    print(f"max |C - C_float64| / (|A| |B|) of each float32 product at {shape} (inner sum length in brackets)")
    inner = {name: a.shape[1] for name, (a, _) in products(step_buffers(args.shape, "float32")).items()}
    for name in inner:
        cells = ", ".join(f"{lib} {errors[lib][name]:.2e} ({errors[lib][name] / errors['numpy'][name]:.1f}x numpy's)"
                          for lib in errors)
        print(f"  {name} [{inner[name]}]: {cells}")
    if args.out:
        args.out.write_text(json.dumps({"shape": shape, "inner": inner, "errors": errors}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
