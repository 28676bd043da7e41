"""The Caffe2 idea in JAX: the trained forward pass serialized with jax.export, served elsewhere.

python -m deploy.jax_export --source jax --weights w.npz --model-dir models/ --json rows.json

Writes models/jax_export.stablehlo (StableHLO bytes with a symbolic batch dimension), times the
source (the same forward jitted in this process) at batch 1 and N, and serves the file with
deploy/jax_serve.py in a fresh process that has no Python source of the model; each served
output is compared with the source's, as the ONNX exports are.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from implementations import jax_x64  # noqa: F401  (a float64 model: the switch before jax is imported)

import numpy as np

from common.problem import make_serving_batch
from common.timing import step_stats, time_calls
from deploy.bench import DeployRow, max_rel_diff, parse_child

MODEL = "jax_export.stablehlo"
SOURCE = "jax"  # the registry's Exporter.source of the entry whose child this is


def export(w1: np.ndarray, w2: np.ndarray, path: Path):
    """Serialize x -> relu(x @ w1) @ w2, the trained weights as constants, for any batch size;
    returns the jitted source forward."""
    import jax
    import jax.numpy as jnp

    forward = jax.jit(lambda x: jnp.maximum(x @ jnp.asarray(w1), 0) @ jnp.asarray(w2))
    (batch,) = jax.export.symbolic_shape("N")
    exported = jax.export.export(forward)(jax.ShapeDtypeStruct((batch, w1.shape[0]), w1.dtype))
    path.write_bytes(exported.serialize())
    return forward


def serve(path: Path, x: np.ndarray, repeats: int, threads: int) -> tuple[np.ndarray, list[float], float]:
    """deploy/jax_serve.py on x in a fresh process: (output, per-call times in s, load time in s)."""
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "x.npy"
        np.save(request, x)
        proc = subprocess.run([sys.executable, "-m", "deploy.jax_serve", str(path), str(request), "--repeat",
                               str(repeats), "--threads", str(threads)], capture_output=True, text=True, timeout=600,
                              cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "jax_serve failed")
    reply = json.loads(proc.stdout)
    y = np.array(reply["data"], dtype=x.dtype).reshape(reply["dims"])
    return y, [t / 1e3 for t in reply["times_ms"]], reply["load_ms"] / 1e3


def rows(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, model_dir: Path, threads: int, repeats: int,
         warmup: int) -> list[DeployRow]:
    path = model_dir / MODEL
    forward = export(w1, w2, path)
    size = path.stat().st_size
    found = []
    for batch in dict.fromkeys((1, len(x))):
        xb = np.ascontiguousarray(x[:batch])
        want = np.asarray(forward(xb))
        source = step_stats(time_calls(lambda: forward(xb).block_until_ready(), 1 + warmup + repeats), warmup)
        found.append(DeployRow(model=MODEL, source=SOURCE, runtime="jax", batch=batch, dtype=str(x.dtype),
                               median_s=source.median_s, iqr_s=source.iqr_s, max_rel_err=None))
        y, times, load_s = serve(path, xb, 1 + warmup + repeats, threads)
        served = step_stats(times, warmup)
        found.append(DeployRow(model=MODEL, source=SOURCE, runtime="jax.export (fresh process)", batch=batch,
                               dtype=str(x.dtype), median_s=served.median_s, iqr_s=served.iqr_s,
                               max_rel_err=max_rel_diff(y, want), load_s=load_s, model_bytes=size))
    return found


def main(argv: list[str] | None = None) -> None:
    args, cfg, w1, w2 = parse_child("python -m deploy.jax_export", __doc__.splitlines()[0], argv, [SOURCE])
    from implementations import jax_support

    jax_support.bound_threads(cfg.threads)
    found = rows(w1, w2, make_serving_batch(cfg), args.model_dir, cfg.threads, args.repeats, cfg.warmup)
    args.json.write_text(json.dumps([asdict(row) for row in found]))


if __name__ == "__main__":
    sys.exit(main())
