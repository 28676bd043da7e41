"""Drive deploy/node/serve.js: predict_net.onnx served by ONNX Runtime for Node.js."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

NODE_DIR = Path(__file__).resolve().parent / "node"
INSTALL_HINT = "(cd deploy/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci)"


def unavailable_reason() -> str | None:
    """None when serve.js can run here, else why not (and what to do)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "onnxruntime-node").is_dir():
        return f"onnxruntime-node is not installed: {INSTALL_HINT}"
    return None


def install() -> None:
    """npm ci with the lock file; the package's GPU-binary download is skipped (offline-safe)."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed")
    env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, env=env, check=True,
                   capture_output=True, text=True, timeout=600)


def serve(model: Path, x: np.ndarray, repeats: int = 0, threads: int = 1) -> tuple[np.ndarray, list[float]]:
    """Run serve.js on x; return its output (exact: float32/64 survive JSON) and per-run times in s."""
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "input.json"
        request.write_text(json.dumps({"shape": list(x.shape), "data": x.ravel().tolist()}))
        proc = subprocess.run(["node", str(NODE_DIR / "serve.js"), str(model), str(request), "--repeat",
                               str(repeats), "--threads", str(threads)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"serve.js exited with {proc.returncode}")
    reply = json.loads(proc.stdout)
    y = np.array(reply["data"], dtype=x.dtype).reshape(reply["dims"])
    return y, [t / 1e3 for t in reply["times_ms"]]
