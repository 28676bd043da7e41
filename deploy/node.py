"""Drive deploy/node/serve.js: predict_net.onnx served by ONNX Runtime for Node.js."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from common.launch import run_captured

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
    code, _, stderr = run_captured(["npm", "ci", "--no-audit", "--no-fund"], env, 600, cwd=NODE_DIR)
    if code != 0:
        raise RuntimeError(f"npm ci failed: {stderr.strip() or 'timed out'}")


def serve(model: Path, x: np.ndarray, repeats: int = 0, threads: int = 1) -> tuple[np.ndarray, list[float], float]:
    """Run serve.js on x; return its output (exact: float32/64 survive JSON), per-run times and the
    session's load time, in s."""
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "input.json"
        request.write_text(json.dumps({"shape": list(x.shape), "data": x.ravel().tolist()}))
        code, stdout, stderr = run_captured(["node", str(NODE_DIR / "serve.js"), str(model), str(request),
                                             "--repeat", str(repeats), "--threads", str(threads)], None, 600)
    if code != 0:
        raise RuntimeError(stderr.strip() or ("serve.js timed out" if code is None else f"serve.js exited with {code}"))
    reply = json.loads(stdout)
    y = np.array(reply["data"], dtype=x.dtype).reshape(reply["dims"])
    return y, [t / 1e3 for t in reply["times_ms"]], reply["load_ms"] / 1e3
